package runner

import (
	"fmt"
	"path/filepath"

	"github.com/railco/relay/bench/internal/report"
	"github.com/railco/relay/bench/internal/stats"
)

// Charts writes the throughput and latency charts into dir, named after stamp,
// and returns their paths.
func Charts(res *Results, dir, stamp string) ([]string, error) {
	// Each bar beside what it is measured against: the broker's limit, the
	// offered rate, Little's law or the CPU limit, phase 4.
	var labels []string
	measured, reference := report.Series{Name: "measured"}, report.Series{Name: "reference"}
	bar := func(label string, v, ref float64) {
		labels = append(labels, label)
		measured.Values = append(measured.Values, v)
		reference.Values = append(reference.Values, ref)
	}
	var publish, consume float64
	if b := res.Broker; b != nil {
		publish, consume = b.PublishPerSec, b.ConsumePerSec
		bar("1 broker: raw publish", publish, 0)
		bar("1 broker: raw consume+ack", consume, 0)
	}
	if m := res.Max; m != nil {
		for _, p := range m.Sweep {
			bar(fmt.Sprintf("2 ingress max, %d conns (ref: publish)", p.Connections), p.AcceptedPerSec, publish)
		}
	}
	for _, f := range res.Fixed {
		bar(fmt.Sprintf("3 ingress at %d%% (ref: offered)", f.Percent), f.AcceptedPerSec, float64(f.Rate))
	}
	if e := res.E2E; e != nil {
		bar("4 end to end delivered (ref: offered)", e.DeliveredPerSec, float64(e.Rate))
	}
	if d := res.Drain; d != nil {
		bar("5 backlog drain (ref: consume+ack)", d.PerSec, consume)
	}
	for _, s := range res.Slow {
		bar(fmt.Sprintf("6 slow c=%d (ref: %s)", s.Concurrency, shortRef(s)), s.PerSec, s.Bound)
	}
	if e := res.Flaky; e != nil {
		var ref float64
		if res.E2E != nil {
			ref = res.E2E.DeliveredPerSec
		}
		bar("7 flaky delivered (ref: phase 4)", e.DeliveredPerSec, ref)
	}
	if f := res.Flood; f != nil {
		bar(fmt.Sprintf("9 %d clients during a flood (ref: no flood)", f.Clients), f.During.AcceptedPerSec, f.Alone.AcceptedPerSec)
	}
	var paths []string
	if len(labels) > 0 {
		path := filepath.Join(dir, stamp+"-throughput.png")
		if err := report.Grouped(path, "Throughput by phase", "messages or requests per second", labels, []report.Series{measured, reference}); err != nil {
			return paths, fmt.Errorf("throughput chart: %w", err)
		}
		paths = append(paths, path)
	}

	var groups []string
	var lats []stats.Latency
	if m := res.Max; m != nil {
		groups, lats = append(groups, fmt.Sprintf("2 accept, max (%d conns)", m.Best.Connections)), append(lats, m.Best.Latency)
	}
	for _, f := range res.Fixed {
		groups, lats = append(groups, fmt.Sprintf("3 accept at %d%%", f.Percent)), append(lats, f.Latency)
	}
	if e := res.E2E; e != nil {
		groups = append(groups, "4 accept", "4 accept-to-delivery")
		lats = append(lats, e.AcceptLatency, e.AcceptToDelivery)
	}
	// Phase 7's accept-to-delivery includes a retry tier's delay (seconds)
	// and would flatten every other bar; it is in the table.
	if len(groups) > 0 {
		p50, p99, p999 := report.Series{Name: "p50"}, report.Series{Name: "p99"}, report.Series{Name: "p99.9"}
		for _, l := range lats {
			p50.Values = append(p50.Values, l.P50)
			p99.Values = append(p99.Values, l.P99)
			p999.Values = append(p999.Values, l.P999)
		}
		path := filepath.Join(dir, stamp+"-latency.png")
		if err := report.Grouped(path, "Latency percentiles", "milliseconds", groups, []report.Series{p50, p99, p999}); err != nil {
			return paths, fmt.Errorf("latency chart: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}
