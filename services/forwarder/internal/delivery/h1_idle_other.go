//go:build !unix

package delivery

import "syscall"

// idleUsable cannot look at an idle connection here: a closed one is found
// when a request on it fails before any answer (and is retried once).
func idleUsable(syscall.RawConn) bool { return true }
