//go:build unix

package delivery

import "syscall"

// idleUsable reports whether an idle connection can carry a request: no
// byte arrived on it since its last answer, and the backend has not closed
// it. A byte nobody asked for could otherwise be read as the next
// request's answer (a stray 2xx, a false delivery); a closed one would
// fail the next request. One non-blocking peek, no wait.
func idleUsable(raw syscall.RawConn) bool {
	if raw == nil {
		return true
	}
	usable := false
	err := raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		usable = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK // nothing to read: idle and open
		return true
	})
	return err == nil && usable
}
