// Package profiling serves the Go runtime's profiles (net/http/pprof) on a
// service's admin address, for finding where CPU time and memory go in a
// running service under real load:
//
//	go tool pprof -top 'http://127.0.0.1:8292/debug/pprof/profile?seconds=10'
//
// It is off by default (INGRESS_PPROF, FORWARDER_PPROF): a profile costs CPU
// while it runs, and a heap or goroutine dump shows internals (message ids
// in stacks, say) that only an operator should see. Mount it only on the
// admin mux, behind its token when one is set, never on the public port.
package profiling

import (
	"net/http"
	"net/http/pprof"
)

// Prefix is where Mount serves the profiles; /debug/pprof/ lists them.
const Prefix = "/debug/pprof/"

// Mount adds the pprof endpoints under Prefix to mux. A CPU profile or trace
// runs for ?seconds= (30 by default), which must stay below the server's
// WriteTimeout.
func Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Prefix, pprof.Index) // also heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("GET "+Prefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc("GET "+Prefix+"profile", pprof.Profile)
	mux.HandleFunc("GET "+Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc("POST "+Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc("GET "+Prefix+"trace", pprof.Trace)
}
