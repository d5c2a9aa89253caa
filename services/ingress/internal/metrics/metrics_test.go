package metrics_test

import (
	"errors"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/pkg/metrics/metricstest"

	"github.com/railco/relay/services/ingress/internal/connlimit"
	"github.com/railco/relay/services/ingress/internal/httpapi"
	"github.com/railco/relay/services/ingress/internal/metrics"
)

var (
	_ httpapi.Observer   = (*metrics.Metrics)(nil)
	_ connlimit.Observer = (*metrics.Metrics)(nil)
)

// own drops the Go and process collectors' names.
func own(names []string) []string {
	return slices.DeleteFunc(names, func(n string) bool {
		return strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_")
	})
}

func TestNew_ExportsExactlyNames(t *testing.T) {
	m := metrics.New(func() bool { return false })
	m.Clients("anonymous")                          // run does so: the per-client series exist from the start
	m.Events(func() (map[string]time.Time, error) { // run does so with EVENTS=on
		return map[string]time.Time{"catering.registrations": time.Now()}, nil
	})
	got := own(metricstest.Gathered(t, m.Gatherer()))
	want := slices.Sorted(slices.Values(metrics.Names))
	if !slices.Equal(got, want) {
		t.Errorf("gathered %q, want metrics.Names %q", got, want)
	}
	for _, h := range metrics.Histograms {
		if !slices.Contains(metrics.Names, h) {
			t.Errorf("histogram %s is not in Names", h)
		}
	}
}

func TestMetrics_CountWhatTheyAreTold(t *testing.T) {
	var blocked atomic.Bool
	m := metrics.New(blocked.Load)
	m.Answered(202, "accepted")
	m.Answered(202, "accepted")
	m.Answered(400, "malformed_json")
	m.Answered(500, "")
	m.Registration(3 * time.Millisecond)
	m.Registration(40 * time.Millisecond)
	m.Confirmed(2 * time.Millisecond)
	m.BrokerConnected(true)
	m.BrokerConnected(false)
	blocked.Store(true)
	m.ConnectionsOpen(5, 2)
	m.ConnectionsOpen(4, 1)
	m.ConnectionRefused()
	m.ConnectionReclaimed()
	m.ConnectionReclaimed()
	m.Clients("railco-booking", "railco-mobile")
	m.KeysLoaded(2)
	m.ClientAnswered("railco-booking", 202)
	m.ClientAnswered("railco-booking", 202)
	m.ClientAnswered("railco-booking", 429)
	m.AuthFailed("invalid")
	m.AuthFailed("invalid")
	m.AuthFailed("missing")
	m.RateLimited("railco-booking")
	m.KeysReloaded(3, nil)
	m.KeysReloaded(3, errors.New("line 2: want name:key"))

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	text := metricstest.Scrape(t, srv.URL)
	metricstest.Lint(t, text)
	fams := metricstest.Families(t, text)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{metrics.Requests, []string{"code", "202", "outcome", "accepted"}, 2},
		{metrics.Requests, []string{"code", "400", "outcome", "malformed_json"}, 1},
		{metrics.Requests, []string{"code", "500", "outcome", "unknown"}, 1},
		{metrics.Requests, []string{"code", "503", "outcome", "not_stored"}, 0},
		{metrics.RequestDuration, nil, 2},
		{metrics.PublishConfirm, nil, 1},
		{metrics.BrokerConnected, nil, 0},
		{metrics.BrokerBlocked, nil, 1},
		{metrics.ConnectionsOpen, nil, 4},
		{metrics.ConnectionsIdle, nil, 1},
		{metrics.ConnectionsShed, []string{"action", "refused"}, 1},
		{metrics.ConnectionsShed, []string{"action", "reclaimed"}, 2},
		{metrics.ClientRequests, []string{"client", "railco-booking", "code", "202"}, 2},
		{metrics.ClientRequests, []string{"client", "railco-booking", "code", "429"}, 1},
		{metrics.ClientRequests, []string{"client", "railco-mobile", "code", "202"}, 0},
		{metrics.AuthFailures, []string{"reason", "invalid"}, 2},
		{metrics.AuthFailures, []string{"reason", "missing"}, 1},
		{metrics.AuthFailures, []string{"reason", "malformed"}, 0},
		{metrics.RateLimited, []string{"client", "railco-booking"}, 1},
		{metrics.RateLimited, []string{"client", "railco-mobile"}, 0},
		{metrics.APIClients, nil, 3},
		{metrics.APIKeyReloads, []string{"result", "success"}, 1},
		{metrics.APIKeyReloads, []string{"result", "failure"}, 1},
		{metrics.BuildInfo, []string{"component", "ingress", "version", "dev"}, 1},
	}
	for _, tt := range tests {
		if got, ok := metricstest.Value(t, fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
}

func TestNew_BuildInfoCarriesVersionAndGo(t *testing.T) {
	defer func(v string) { metrics.Version = v }(metrics.Version)
	metrics.Version = "v1.2.3-4-gabcdef0"
	m := metrics.New(func() bool { return false })
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	fams := metricstest.Families(t, metricstest.Scrape(t, srv.URL))
	labels := []string{"component", "ingress", "version", "v1.2.3-4-gabcdef0", "goversion", runtime.Version()}
	if got, ok := metricstest.Value(t, fams, metrics.BuildInfo, labels...); !ok || got != 1 {
		t.Errorf("%s%v = %v (present %v), want 1", metrics.BuildInfo, labels, got, ok)
	}
}
