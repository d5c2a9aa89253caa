package metrics_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/metrics/metricstest"
)

func TestHandler_ServesTheRegistryAndPassesPromtool(t *testing.T) {
	reg := metrics.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()

	text := metricstest.Scrape(t, srv.URL)
	metricstest.Lint(t, text)
	fams := metricstest.Families(t, text)
	if v, ok := metricstest.Value(t, fams, "relay_test_things_total"); !ok || v != 3 {
		t.Errorf("relay_test_things_total = %v (present %v), want 3", v, ok)
	}
	for _, want := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := fams[want]; !ok {
			t.Errorf("%s missing: the Go and process collectors are not registered", want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		raw     string
		want    time.Duration
		wantErr bool
	}{
		{"", metrics.DefaultQueueInterval, false},
		{"0", 0, false},
		{"30s", 30 * time.Second, false},
		{"1s", time.Second, false},
		{"500ms", 500 * time.Millisecond, true},
		{"-1s", -time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			l := config.NewLoader(func(string) string { return tt.raw })
			c := metrics.LoadConfig(l)
			if err := l.Err(); err != nil {
				t.Fatal(err)
			}
			if c.QueueInterval != tt.want {
				t.Errorf("QueueInterval %s, want %s", c.QueueInterval, tt.want)
			}
			if err := c.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
