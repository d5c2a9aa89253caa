package report_test

import (
	"testing"

	"github.com/railco/relay/bench/internal/report"
)

func TestRatio_NeverRoundsUp(t *testing.T) {
	f := report.Figure{Ratio: 0.49996, Reference: "broker publish"}
	if got, want := report.Ratio(f), "49.99% of broker publish"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestMet(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		met  *bool
		want string
	}{{nil, ""}, {&yes, "yes"}, {&no, "NO"}} {
		if got := report.Met(report.Figure{Met: tc.met}); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
