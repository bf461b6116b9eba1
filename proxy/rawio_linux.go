package proxy

import (
	"syscall"
	"unsafe"
)

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket without
// the runtime's entersyscall/exitsyscall, for holder.readHeld. A non-blocking
// socket call never waits, so there is nothing for the scheduler to hand off;
// the bookkeeping costs user time, and entersyscall wakes the runtime's system
// monitor thread whenever it has gone to sleep because the process was idle,
// after which it polls every 20 µs for a millisecond. On a proxy that idles
// between bursts (one CPU, GOMAXPROCS=1) that was dozens of wake-ups a second,
// each a context switch on the proxy's CPU.
func rawRead(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func bufPtr(p []byte) unsafe.Pointer {
	if len(p) == 0 {
		return nil
	}
	return unsafe.Pointer(&p[0])
}

// rawPeekIdle reports whether nothing is readable on an idle socket: a
// non-blocking MSG_PEEK that finds neither data nor end of stream (EAGAIN).
func rawPeekIdle(fd uintptr, buf []byte) bool {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(bufPtr(buf)), uintptr(len(buf)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e == syscall.EAGAIN
}
