package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/railco/relay/services/ingress/internal/admin"
)

const token = "adm1n-t0ken-0123456789"

var (
	metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "relay_test 1\n")
	})
	probes = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "probe "+r.URL.Path)
	})
)

func get(h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandler_ServesMetricsAndProbes(t *testing.T) {
	h := admin.Handler(metrics, probes, "")
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/metrics", 200, "relay_test 1\n"},
		{"/healthz", 200, "probe /healthz"},
		{"/readyz", 200, "probe /readyz"},
		{"/catering/register", 404, `{"error":"Not Found"}` + "\n"},
		{"/", 404, `{"error":"Not Found"}` + "\n"},
	}
	for _, tt := range tests {
		if rec := get(h, tt.path); rec.Code != tt.status || rec.Body.String() != tt.body {
			t.Errorf("GET %s: %d %q, want %d %q", tt.path, rec.Code, rec.Body, tt.status, tt.body)
		}
	}
}

func TestHandler_WithATokenWantsIt(t *testing.T) {
	h := admin.Handler(metrics, probes, token)
	tests := []struct {
		name   string
		header []string
		status int
	}{
		{"no Authorization", nil, 401},
		{"wrong token", []string{"Authorization", "Bearer wrong"}, 401},
		{"a prefix of the token", []string{"Authorization", "Bearer " + token[:len(token)-1]}, 401},
		{"the token and more", []string{"Authorization", "Bearer " + token + "x"}, 401},
		{"Basic", []string{"Authorization", "Basic " + token}, 401},
		{"sent twice", []string{"Authorization", "Bearer " + token, "Authorization", "Bearer " + token}, 401},
		{"the token", []string{"Authorization", "Bearer " + token}, 200},
		{"the scheme in lower case", []string{"Authorization", "bearer " + token}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/metrics", "/readyz", "/nothing"} {
				rec := get(h, path, tt.header...)
				want := tt.status
				if want == 200 && path == "/nothing" {
					want = 404
				}
				if rec.Code != want {
					t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
				}
				if rec.Code != 401 {
					continue
				}
				if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="relay-admin"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !strings.Contains(body["error"], "admin token required") {
					t.Errorf("body %q: want a JSON error (%v)", rec.Body, err)
				}
				if strings.Contains(rec.Body.String(), token) {
					t.Error("the 401 shows the token")
				}
			}
		})
	}
}

func TestHandler_ProfilesOnlyWhenTurnedOn(t *testing.T) {
	if rec := get(admin.Handler(metrics, probes, ""), "/debug/pprof/"); rec.Code != http.StatusNotFound {
		t.Errorf("without WithPProf: GET /debug/pprof/: %d, want 404", rec.Code)
	}
	on := admin.Handler(metrics, probes, "", admin.WithPProf())
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
		if rec := get(on, path); rec.Code != http.StatusOK {
			t.Errorf("with WithPProf: GET %s: %d, want 200", path, rec.Code)
		}
	}
	if rec := get(on, "/metrics"); rec.Code != http.StatusOK {
		t.Errorf("with WithPProf: GET /metrics: %d", rec.Code)
	}
	guarded := admin.Handler(metrics, probes, token, admin.WithPProf())
	if rec := get(guarded, "/debug/pprof/"); rec.Code != http.StatusUnauthorized {
		t.Errorf("with a token: GET /debug/pprof/ without it: %d, want 401", rec.Code)
	}
	if rec := get(guarded, "/debug/pprof/", "Authorization", "Bearer "+token); rec.Code != http.StatusOK {
		t.Errorf("with a token: GET /debug/pprof/ with it: %d, want 200", rec.Code)
	}
}
