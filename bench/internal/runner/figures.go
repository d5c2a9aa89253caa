package runner

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/railco/relay/bench/internal/procs"
	"github.com/railco/relay/bench/internal/report"
	"github.com/railco/relay/bench/internal/stats"
)

// Targets from the issue. Ratios are measured in the same run.
const (
	targetMaxOfPublish     = 0.50 // ingress max / broker confirmed publish
	targetAcceptP99MS      = 25.0 // at E2EPercent of max
	targetE2EP99MS         = 50.0 // accept-to-delivery at E2EPercent of max
	targetDrainOfConsume   = 0.40 // drain / raw consume+ack
	targetSlowOfLittle     = 0.80 // of min(Little's law, CPU limit)
	targetFlakyOfE2E       = 0.70 // flaky delivered/s / end-to-end delivered/s
	targetPeakRSSMiB       = 32.0
	targetBacklogFlatRatio = 0.10 // |RSS(large)/RSS(small) - 1|
	targetFloodRSSMiB      = 64.0 // ingress with FloodConns idle connections held
	targetFloodOfAlone     = 0.80 // clients' accepted/s during the flood / without it
)

// noisyCores: mean other work or steal above this (of 2 cores) makes a run noisy.
const noisyCores = 0.15

// noise summarises the CPU the run did not get, over every measured window.
func noise(res *Results) Noise {
	var us []procs.Usage
	if b := res.Broker; b != nil {
		us = append(us, b.PublishCPU, b.ConsumeCPU)
	}
	if m := res.Max; m != nil {
		for _, p := range m.Sweep {
			us = append(us, p.CPU)
		}
	}
	for _, f := range res.Fixed {
		us = append(us, f.CPU)
	}
	for _, e := range []*E2E{res.E2E, res.Flaky} {
		if e != nil {
			us = append(us, e.CPU)
		}
	}
	if d := res.Drain; d != nil {
		us = append(us, d.CPU)
	}
	for _, s := range res.Slow {
		us = append(us, s.CPU)
	}
	if f := res.Flood; f != nil {
		us = append(us, f.Alone.CPU, f.During.CPU)
	}
	var n Noise
	for _, u := range us {
		if u.Seconds == 0 {
			continue
		}
		n.Windows++
		n.MaxOther, n.MaxSteal = max(n.MaxOther, u.Other), max(n.MaxSteal, u.Steal)
		n.MeanOther += u.Other
		n.MeanSteal += u.Steal
	}
	if n.Windows > 0 {
		n.MeanOther /= float64(n.Windows)
		n.MeanSteal /= float64(n.Windows)
	}
	n.Noisy = n.MeanOther > noisyCores || n.MeanSteal > noisyCores
	return n
}

// figures lays out the table: every figure, its ratio, and its target.
func figures(res *Results) []report.Figure {
	var out []report.Figure
	add := func(f report.Figure) { out = append(out, f) }
	check := func(ok bool) *bool { return &ok }
	var publish, consume float64
	if b := res.Broker; b != nil {
		publish, consume = b.PublishPerSec, b.ConsumePerSec
		add(report.Figure{Phase: "1 broker limit", Name: "raw confirmed publish (quorum, persistent)", Value: publish, Unit: "msg/s"})
		add(cpuFigure("1 broker limit", "  CPU while publishing", b.PublishCPU))
		add(report.Figure{Phase: "1 broker limit", Name: "raw consume + ack", Value: consume, Unit: "msg/s"})
		add(cpuFigure("1 broker limit", "  CPU while consuming", b.ConsumeCPU))
	}
	ratio := func(v, ref float64) float64 {
		if ref <= 0 {
			return 0
		}
		return v / ref
	}
	if m := res.Max; m != nil {
		b := m.Best
		f := report.Figure{Phase: "2 ingress max", Name: fmt.Sprintf("accepted/s, closed loop (best of %s conns: %d)", connList(m), b.Connections),
			Value: b.AcceptedPerSec, Unit: "req/s", Ratio: ratio(b.AcceptedPerSec, publish), Reference: "broker publish",
			Target: fmt.Sprintf(">= %.0f%% of broker publish", targetMaxOfPublish*100)}
		if publish > 0 {
			f.Met = check(f.Ratio >= targetMaxOfPublish)
		} else {
			f.Reference = "" // phase 1 did not run: no ratio to show
		}
		add(f)
		addLatency(add, "2 ingress max", "accept", b.Latency, "", nil)
		add(cpuFigure("2 ingress max", "CPU", b.CPU))
	}
	for _, fx := range res.Fixed {
		phase := fmt.Sprintf("3 ingress %d%% (%d/s)", fx.Percent, fx.Rate)
		add(report.Figure{Phase: phase, Name: fmt.Sprintf("accepted/s (peak %d conns)", fx.PeakConns), Value: fx.AcceptedPerSec, Unit: "req/s", Ratio: ratio(fx.AcceptedPerSec, float64(fx.Rate)), Reference: "offered"})
		target, met := "", (*bool)(nil)
		if fx.Percent == res.Config.E2EPercent {
			target, met = fmt.Sprintf("p99 <= %.0f ms", targetAcceptP99MS), check(fx.Latency.P99 <= targetAcceptP99MS)
		}
		addLatency(add, phase, "accept (vs schedule)", fx.Latency, target, met)
		if fx.RawConfirm != nil {
			addLatency(add, phase, "raw amqp091-go confirm at this rate (no HTTP):", *fx.RawConfirm, "", nil)
		}
		add(cpuFigure(phase, "CPU", fx.CPU))
	}
	if e := res.E2E; e != nil {
		addE2E(add, "4 end to end", e, publish, nil, false, check)
	}
	if d := res.Drain; d != nil {
		f := report.Figure{Phase: "5 backlog drain", Name: fmt.Sprintf("drain %d msgs (concurrency %d)", d.Messages, d.Concurrency),
			Value: d.PerSec, Unit: "msg/s", Ratio: ratio(d.PerSec, consume), Reference: "raw consume+ack",
			Target: fmt.Sprintf(">= %.0f%% of raw consume+ack", targetDrainOfConsume*100)}
		if consume > 0 {
			f.Met = check(f.Ratio >= targetDrainOfConsume)
		}
		add(f)
		add(cpuFigure("5 backlog drain", "CPU", d.CPU))
	}
	for _, s := range res.Slow {
		ref := "Little's law"
		if s.Bound < s.Little {
			ref = fmt.Sprintf("CPU limit (drain; Little %.0f/s)", s.Little)
		}
		add(report.Figure{Phase: fmt.Sprintf("6 slow backend c=%d", s.Concurrency), Name: "delivered/s (20 ms backend)",
			Value: s.PerSec, Unit: "msg/s", Ratio: ratio(s.PerSec, s.Bound), Reference: ref,
			Target: fmt.Sprintf(">= %.0f%% of %s", targetSlowOfLittle*100, shortRef(s)), Met: check(ratio(s.PerSec, s.Bound) >= targetSlowOfLittle)})
		add(cpuFigure(fmt.Sprintf("6 slow backend c=%d", s.Concurrency), "CPU", s.CPU))
	}
	if e := res.Flaky; e != nil {
		var ref *E2E
		if res.E2E != nil {
			ref = res.E2E
		}
		addE2E(add, fmt.Sprintf("7 flaky backend (%.0f%% 500s)", res.Config.FlakyRate*100), e, publish, ref, true, check)
	}
	for _, p := range res.Memory.Peaks {
		add(report.Figure{Phase: "8 memory", Name: fmt.Sprintf("peak RSS %s, phase %s", p.Service, p.Phase), Value: p.MiB, Unit: "MiB",
			Target: fmt.Sprintf("<= %.0f MiB", targetPeakRSSMiB), Met: check(p.MiB <= targetPeakRSSMiB)})
	}
	if m := res.Memory; m.BacklogMeasured {
		add(report.Figure{Phase: "8 memory", Name: fmt.Sprintf("forwarder RSS, %d waiting (%d left after)", m.BacklogSmall, m.WaitingAtSmall), Value: m.RSSSmallMiB, Unit: "MiB"})
		r := ratio(m.RSSLargeMiB, m.RSSSmallMiB)
		add(report.Figure{Phase: "8 memory", Name: fmt.Sprintf("forwarder RSS, %d waiting (%d left after)", m.BacklogLarge, m.WaitingAtLarge), Value: m.RSSLargeMiB, Unit: "MiB",
			Ratio: r, Reference: fmt.Sprintf("RSS at %d", m.BacklogSmall),
			Target: fmt.Sprintf("within ±%.0f%%", targetBacklogFlatRatio*100), Met: check(math.Abs(r-1) <= targetBacklogFlatRatio)})
	}
	if f := res.Flood; f != nil {
		addFlood(add, f, res.Max, check)
	}
	return out
}

// addFlood adds phase 9's rows: the ingress's memory with the flood held,
// and what the flood did to well-behaved clients.
func addFlood(add func(report.Figure), f *Flood, ingressMax *Max, check func(bool) *bool) {
	const phase = "9 connection flood"
	o := f.Opening
	add(report.Figure{Phase: phase, Name: fmt.Sprintf("flood: %d connections at once, each one request then idle", f.Conns), Value: float64(o.Connected), Unit: "conns",
		Text: fmt.Sprintf("%d connected in %.1f s; answered %s; no answer %d", o.Connected, o.Seconds, answers(o.Answers), sum(o.Errors))})
	if f.PeakMiB > 0 {
		add(report.Figure{Phase: phase, Name: fmt.Sprintf("ingress peak RSS, flood of %d + %d clients", f.Conns, f.Clients), Value: f.PeakMiB, Unit: "MiB",
			Target: fmt.Sprintf("<= %.0f MiB", targetFloodRSSMiB), Met: check(f.PeakMiB <= targetFloodRSSMiB)})
		add(report.Figure{Phase: phase, Name: "  ingress RSS before the flood / with it held", Value: f.RSSHeldMiB, Unit: "MiB",
			Text: fmt.Sprintf("%.2f / %.2f MiB", f.RSSBeforeMiB, f.RSSHeldMiB)})
	}
	add(report.Figure{Phase: phase, Name: "flood connections the ingress kept: held / after the clients' run", Value: float64(f.Alive), Unit: "conns",
		Text: fmt.Sprintf("%d / %d", f.AliveHeld, f.Alive)})
	if f.Open >= 0 {
		add(report.Figure{Phase: phase, Name: "ingress: connections shed: idle reclaimed / new refused (503 or closed)", Value: float64(f.Reclaimed + f.Refused), Unit: "conns",
			Text: fmt.Sprintf("%d / %d", f.Reclaimed, f.Refused)})
	}
	alone := report.Figure{Phase: phase, Name: fmt.Sprintf("accepted/s, %d closed-loop clients, no flood", f.Clients), Value: f.Alone.AcceptedPerSec, Unit: "req/s"}
	if ingressMax != nil && ingressMax.Best.AcceptedPerSec > 0 {
		alone.Ratio, alone.Reference = stats.Ratio(f.Alone.AcceptedPerSec, ingressMax.Best.AcceptedPerSec), "ingress max (2)"
	}
	add(alone)
	add(report.Figure{Phase: phase, Name: fmt.Sprintf("accepted/s, %d closed-loop clients, during the flood", f.Clients), Value: f.During.AcceptedPerSec, Unit: "req/s",
		Ratio: stats.Ratio(f.During.AcceptedPerSec, f.Alone.AcceptedPerSec), Reference: "no flood",
		Target: fmt.Sprintf(">= %.0f%% of no flood", targetFloodOfAlone*100),
		Met:    check(f.Alone.AcceptedPerSec > 0 && f.During.AcceptedPerSec >= targetFloodOfAlone*f.Alone.AcceptedPerSec)})
	add(report.Figure{Phase: phase, Name: "clients' requests not accepted during the flood", Value: float64(f.During.Errors), Unit: "reqs",
		Target: "0", Met: check(f.During.Errors == 0 && f.During.AcceptedPerSec > 0)})
	addLatency(add, phase, "accept, no flood,", f.Alone.Latency, "", nil)
	addLatency(add, phase, "accept, during the flood,", f.During.Latency, "", nil)
	add(cpuFigure(phase, "CPU during the flood", f.During.CPU))
}

// answers formats status counts as "200: 1024, 503: 257".
func answers(m map[int]int) string {
	codes := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d: %d", c, m[c])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// addLatency adds one row for a latency summary; its value is p99, the
// figure the targets name, and its text shows p50, p99 and p99.9.
func addLatency(add func(report.Figure), phase, what string, l stats.Latency, target string, met *bool) {
	add(report.Figure{Phase: phase, Name: what + " latency p50 / p99 / p99.9", Value: l.P99, Unit: "ms",
		Text:   fmt.Sprintf("%.2f / %.2f / %.2f ms", l.P50, l.P99, l.P999),
		Target: target, Met: met})
}

// addE2E adds the rows of phase 4, or of phase 7 (flaky) compared with
// phase 4 (ref, nil when phase 4 did not run).
func addE2E(add func(report.Figure), phase string, e *E2E, publish float64, ref *E2E, flaky bool, check func(bool) *bool) {
	f := report.Figure{Phase: phase, Name: fmt.Sprintf("delivered/s at %d/s offered", e.Rate), Value: e.DeliveredPerSec, Unit: "msg/s"}
	switch {
	case !flaky:
		f.Ratio, f.Reference = stats.Ratio(e.DeliveredPerSec, publish), "broker publish"
	case ref != nil:
		f.Ratio, f.Reference = stats.Ratio(e.DeliveredPerSec, ref.DeliveredPerSec), "end to end (4)"
		f.Target = fmt.Sprintf(">= %.0f%% of phase 4", targetFlakyOfE2E*100)
		f.Met = check(f.Ratio >= targetFlakyOfE2E)
	}
	add(f)
	add(report.Figure{Phase: phase, Name: fmt.Sprintf("lost (of %d accepted)", e.Accepted), Value: float64(e.Lost), Unit: "msgs",
		Target: "0", Met: check(e.Lost == 0 && e.Accepted > 0)})
	if e.Undelivered > 0 {
		add(report.Figure{Phase: phase, Name: fmt.Sprintf("not delivered by the drain timeout (%d still in the broker)", e.StillQueued),
			Value: float64(e.Undelivered), Unit: "msgs"})
	}
	if flaky {
		add(report.Figure{Phase: phase, Name: "answered 500 (then retried via tiers)", Value: float64(e.Sink.Failed), Unit: "msgs"})
	}
	if e.BreakerOpened >= 0 {
		add(report.Figure{Phase: phase, Name: "circuit breaker opened (all delivery paused)", Value: float64(e.BreakerOpened), Unit: "times",
			Text: fmt.Sprintf("%d times", e.BreakerOpened)})
	}
	addLatency(add, phase, "accept", e.AcceptLatency, "", nil)
	target, met := "", (*bool)(nil)
	if !flaky {
		target, met = fmt.Sprintf("p99 <= %.0f ms", targetE2EP99MS), check(e.AcceptToDelivery.P99 <= targetE2EP99MS)
	}
	addLatency(add, phase, "accept-to-delivery", e.AcceptToDelivery, target, met)
	add(cpuFigure(phase, "CPU", e.CPU))
}

// cpuFigure shows where the CPU went during a measured window, in cores of
// the machine's total: the evidence for which resource is the bottleneck.
func cpuFigure(phase, name string, u procs.Usage) report.Figure {
	var b strings.Builder
	for _, k := range []string{"broker", "ingress", "forwarder", "sink", "bench"} {
		if v, ok := u.Cores[k]; ok {
			fmt.Fprintf(&b, "%s %.2f, ", k, v)
		}
	}
	fmt.Fprintf(&b, "other %.2f, idle %.2f, steal %.2f", u.Other, u.Idle, u.Steal)
	return report.Figure{Phase: phase, Name: name + " (cores)", Text: b.String()}
}

func connList(m *Max) string {
	s := ""
	for i, p := range m.Sweep {
		if i > 0 {
			s += "/"
		}
		s += fmt.Sprint(p.Connections)
	}
	return s
}

func shortRef(s Slow) string {
	if s.Bound < s.Little {
		return "CPU limit"
	}
	return "c/latency"
}
