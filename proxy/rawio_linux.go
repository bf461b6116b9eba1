//go:build linux && !race

package proxy

import (
	"syscall"
	"unsafe"
)

// rawRead and rawWrite are recv(2) and send(2) on a non-blocking socket without
// the runtime's entersyscall/exitsyscall, for holder.readHeld. A non-blocking
// socket call never waits, so there is nothing for the scheduler to hand off;
// the bookkeeping costs user time, and entersyscall wakes the runtime's system
// monitor thread whenever it has gone to sleep because the process was idle,
// after which it polls every 20 µs for a millisecond. On a proxy that idles
// between bursts (one CPU, GOMAXPROCS=1) that was dozens of wake-ups a second,
// each a context switch on the proxy's CPU.
//
// recvfrom and sendto rather than read and write: on a socket they do the
// same, but skip the file layer's position lock, permission hook and
// fsnotify calls. On loopback: an empty read 128 ns against 146 ns, a 64-byte
// write 295 ns against 349 ns. MSG_NOSIGNAL: a write to a connection the peer
// reset fails with EPIPE without raising SIGPIPE first.
//
// Under the race detector rawio_other.go's plain calls are used instead: the
// detector learns that a read follows the peer's write only through the
// annotations of syscall.Read and syscall.Write, as net.Conn's reads and
// writes are annotated.
//
// They return a bare Errno (0: none), not an error: readHeld compares it with
// EAGAIN and EINTR on every call, which for an error interface is a runtime
// comparison call each time.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
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
