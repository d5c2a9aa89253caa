package main

import (
	"strings"
	"testing"
)

func TestReportPaired_MediansTheRoundsRatios(t *testing.T) {
	o := options{bin: "a,b", phases: "steady", rounds: 3}
	var all []phase
	// Round by round the machine's speed moves both builds; b is 10 %
	// slower than a in each round, which the medians of each build's own
	// figures (4,000 against 3,600) would not show as clearly.
	for r, speed := range []float64{1.0, 0.6, 1.4} {
		for _, p := range []struct {
			bin     string
			factor  float64
			sending float64 // delivered/s while the load sends: b's forwarder takes more of the machine
		}{{"a", 1, 1000}, {"b", 0.9, 1200}} {
			all = append(all, phase{
				Name: "steady", Bin: p.bin, Round: r + 1, Accepted: 1000,
				AcceptedPerSecond:      4000 * speed * p.factor,
				DeliveredPerSecond:     3000 * speed,
				DeliveredSendingPerSec: p.sending * speed,
				IngressCPU:             0.1 / p.factor,
			})
		}
	}
	var w strings.Builder
	reportPaired(&w, o, all)
	out := w.String()
	// accepted 0.90, delivered 1.00, delivered while sending 1.20, both
	// (3,600 + 1,200) / (4,000 + 1,000) = 0.96, CPU per accepted 1.11.
	for _, want := range []string{"accepted/s", "0.90 [0.90 0.90 0.90]", "1.00 [1.00 1.00 1.00]", "1.20 [1.20 1.20 1.20]", "0.96 [0.96 0.96 0.96]", "1.11 [1.11 1.11 1.11]"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	w.Reset()
	reportPaired(&w, options{bin: "a", phases: "steady", rounds: 3}, all)
	if w.Len() != 0 {
		t.Errorf("one build: want no paired report, got:\n%s", w.String())
	}
}
