//go:build !linux || race

package proxy

import "syscall"

// rawRead and rawWrite are plain system calls where rawio_linux.go's are not
// available, and under the race detector, which sees the happens-before of a
// peer's write and the read of its bytes only through syscall.Read and
// syscall.Write. Like those, they return a bare Errno, 0 for none.
func rawRead(fd int, p []byte) (int, syscall.Errno)  { return errno(syscall.Read(fd, p)) }
func rawWrite(fd int, p []byte) (int, syscall.Errno) { return errno(syscall.Write(fd, p)) }

func errno(n int, err error) (int, syscall.Errno) {
	if err == nil {
		return n, 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return 0, e
	}
	return 0, syscall.EIO
}

// rawPeekIdle reports whether nothing is readable on an idle socket.
func rawPeekIdle(fd uintptr, buf []byte) bool {
	_, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN
}
