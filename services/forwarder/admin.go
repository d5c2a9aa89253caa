package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// requireToken lets a request through to next only with "Authorization:
// Bearer <token>"; an empty token lets every request through. Anything else
// gets 401 with WWW-Authenticate: Bearer (RFC 6750). The comparison takes
// the same time whatever the guess: both sides are hashed first, so neither
// their contents nor their lengths show in it.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="relay-forwarder"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "this endpoint needs Authorization: Bearer <FORWARDER_ADMIN_TOKEN>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
