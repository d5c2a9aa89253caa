// Package admin serves the ingress's operational endpoints on an address of
// their own (INGRESS_ADMIN_ADDR), away from the public port that clients
// reach: whoever may register must not thereby read the metrics.
//
// With a token (INGRESS_ADMIN_TOKEN), every request must carry
// "Authorization: Bearer <token>", compared in constant time; without, the
// address itself is the protection (bind it to localhost or a private
// network, and keep it out of the Service that clients use).
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/railco/relay/pkg/profiling"
)

// challenge is the WWW-Authenticate of a 401.
const challenge = `Bearer realm="relay-admin"`

// Option adds to what Handler serves.
type Option func(*http.ServeMux)

// WithPProf serves the Go runtime's profiles under /debug/pprof/
// (INGRESS_PPROF=on), behind the token like everything else here.
func WithPProf() Option { return profiling.Mount }

// Handler serves GET /metrics from metrics, and GET /healthz and GET /readyz
// from probes (the public port's, so that both answer alike), and what opts
// add. Anything else is a JSON 404. With token not empty, a request without
// it is answered 401 before it is routed.
func Handler(metrics, probes http.Handler, token string, opts ...Option) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /healthz", probes)
	mux.Handle("GET /readyz", probes)
	for _, o := range opts {
		o(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, http.StatusText(http.StatusNotFound))
	})
	if token == "" {
		return mux
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r.Header.Values("Authorization"), &want) {
			w.Header().Set("WWW-Authenticate", challenge)
			writeError(w, http.StatusUnauthorized, "admin token required: send Authorization: Bearer <INGRESS_ADMIN_TOKEN>")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized reports whether values is one "Bearer <token>" whose SHA-256 is
// want. Comparing hashes takes the same time whatever the presented token
// shares with the real one, its length included.
func authorized(values []string, want *[sha256.Size]byte) bool {
	if len(values) != 1 {
		return false
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.Trim(token, " ")
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
