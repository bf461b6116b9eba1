//go:build !linux

package proxy

import "syscall"

// rawRead and rawWrite are plain system calls where rawio_linux.go's are not
// available.
func rawRead(fd int, p []byte) (int, error)  { return syscall.Read(fd, p) }
func rawWrite(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }
