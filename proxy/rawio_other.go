//go:build !linux

package proxy

import "syscall"

// rawRead and rawWrite are plain system calls where rawio_linux.go's are not
// available.
func rawRead(fd int, p []byte) (int, error)  { return syscall.Read(fd, p) }
func rawWrite(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }

// rawPeekIdle reports whether nothing is readable on an idle socket.
func rawPeekIdle(fd uintptr, buf []byte) bool {
	_, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN
}
