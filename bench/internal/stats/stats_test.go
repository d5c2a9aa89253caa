package stats_test

import (
	"testing"
	"time"

	"github.com/railco/relay/bench/internal/stats"
)

func TestPercentile_NearestRank(t *testing.T) {
	var samples []time.Duration
	for i := 1; i <= 1000; i++ {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 500 * time.Millisecond},
		{99, 990 * time.Millisecond},
		{99.9, 999 * time.Millisecond},
		{100, 1000 * time.Millisecond},
		{0, 1 * time.Millisecond},
	} {
		if got := stats.Percentile(samples, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestSummarise_SortsAndReportsMilliseconds(t *testing.T) {
	l := stats.Summarise([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if l.N != 3 || l.P50 != 2 || l.Max != 3 || l.Mean != 2 {
		t.Fatalf("got %+v", l)
	}
	if (stats.Summarise(nil) != stats.Latency{}) {
		t.Fatal("empty input must give a zero summary")
	}
}
