package profiling_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/railco/relay/pkg/profiling"
)

func TestMount_ServesTheProfiles(t *testing.T) {
	mux := http.NewServeMux()
	profiling.Mount(mux)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline",
		"/debug/pprof/profile?seconds=1"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, rec.Code, rec.Body.Len())
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	if !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("index lists no profiles: %.200s", rec.Body)
	}
}
