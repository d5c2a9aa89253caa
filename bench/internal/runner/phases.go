package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/bench/internal/load"
	"github.com/railco/relay/bench/internal/rawamqp"
	"github.com/railco/relay/bench/internal/sink"
	"github.com/railco/relay/bench/internal/stats"
)

// brokerLimit is phase 1: confirmed publishing into a scratch quorum queue,
// then consuming it with one manual ack per message, with amqp091-go alone.
func (r *Runner) brokerLimit(ctx context.Context) error {
	queue := r.prefix("raw")
	if err := rawamqp.DeclareScratch(r.conn, queue); err != nil {
		return err
	}
	defer func() {
		if err := rawamqp.DeleteQueue(r.conn, queue); err != nil {
			r.log.Warn("clean-up", "err", err)
		}
	}()
	pubConn, err := amqp.Dial(r.cfg.AMQPURL)
	if err != nil {
		return err
	}
	defer pubConn.Close()
	meter := r.meter()
	pub, err := rawamqp.Publish(ctx, pubConn, rawamqp.PublishOptions{
		Key: queue, Channels: r.cfg.BrokerChannels, Window: r.cfg.BrokerWindow,
		Duration: r.cfg.BrokerPublish.D(), Message: r.message(r.prefix("raw")),
	})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	b := &Broker{Published: pub.Confirmed, PublishPerSec: pub.Rate(), PublishCPU: meter.Stop()}
	r.res.Broker = b
	r.log.Info("broker publish", "confirmed", pub.Confirmed, "per_sec", round(pub.Rate()))

	subConn, err := amqp.Dial(r.cfg.AMQPURL)
	if err != nil {
		return err
	}
	defer subConn.Close()
	meter = r.meter()
	// Generous: consuming everything takes about as long as publishing did.
	sub, err := rawamqp.Consume(ctx, subConn, queue, r.cfg.BrokerPrefetch, pub.Confirmed, 4*r.cfg.BrokerPublish.D()+30*time.Second)
	b.Consumed, b.ConsumePerSec, b.ConsumeCPU = sub.Acked, sub.Rate(), meter.Stop()
	r.log.Info("broker consume", "acked", sub.Acked, "per_sec", round(sub.Rate()))
	return err
}

// ingressMax is phase 2: closed loop at each connection count; the best
// accepted/s is the ingress max that phases 3, 4 and 7 scale from.
func (r *Runner) ingressMax(ctx context.Context) error {
	prefix := r.prefix("max")
	ing, err := r.startIngress(ctx, prefix)
	if err != nil {
		return err
	}
	defer r.deleteTopology(r.topology(prefix))
	m := &Max{}
	var errs []error
	for _, c := range r.cfg.MaxConnections {
		meter := r.meter(ing)
		res, err := load.Run(ctx, load.Options{
			URL: "http://" + ing.Addr + "/catering/register", Payload: r.payload,
			IDs: prefix + ".c" + strconv.Itoa(c), Connections: c,
			Duration: r.cfg.MaxDuration.D(), Warmup: r.cfg.Warmup.D(),
		})
		cpu := meter.Stop()
		if err != nil {
			errs = append(errs, err)
			break
		}
		pt := MaxPoint{Connections: c, AcceptedPerSec: res.AcceptedPerSec, Errors: res.Errors,
			Latency: stats.Summarise(res.Latency), CPU: cpu, PeakConns: res.PeakConns}
		if res.Errors > 0 {
			errs = append(errs, fmt.Errorf("%d connections: %d errors: %v", c, res.Errors, res.ErrorsBy))
		}
		r.log.Info("closed loop", "connections", c, "accepted_per_sec", round(pt.AcceptedPerSec),
			"p50_ms", pt.Latency.P50, "p99_ms", pt.Latency.P99)
		m.Sweep = append(m.Sweep, pt)
		if pt.AcceptedPerSec > m.Best.AcceptedPerSec {
			m.Best = pt
		}
	}
	if len(m.Sweep) > 0 {
		r.res.Max = m
	}
	errs = append(errs, r.stop(ing, "2 ingress max"))
	return errors.Join(errs...)
}

// maxRate is percent of the measured ingress max, in requests per second.
func (r *Runner) maxRate(percent int) (int, error) {
	top := r.cfg.AssumeMax
	if r.res.Max != nil {
		top = r.res.Max.Best.AcceptedPerSec
	}
	if top <= 0 {
		return 0, errNoMax
	}
	return max(int(math.Round(top*float64(percent)/100)), 1), nil
}

// ingressFixed is phase 3: fixed rates, latency against the schedule.
func (r *Runner) ingressFixed(ctx context.Context) error {
	if _, err := r.maxRate(100); err != nil {
		return err
	}
	prefix := r.prefix("fixed")
	ing, err := r.startIngress(ctx, prefix)
	if err != nil {
		return err
	}
	defer r.deleteTopology(r.topology(prefix))
	var errs []error
	for _, pct := range r.cfg.FixedPercents {
		rate, _ := r.maxRate(pct)
		meter := r.meter(ing)
		res, err := load.Run(ctx, load.Options{
			URL: "http://" + ing.Addr + "/catering/register", Payload: r.payload,
			IDs: prefix + ".p" + strconv.Itoa(pct), Rate: rate,
			Duration: r.cfg.FixedDuration.D(), Warmup: r.cfg.Warmup.D(),
		})
		cpu := meter.Stop()
		if err != nil {
			errs = append(errs, err)
			break
		}
		f := Fixed{Percent: pct, Rate: rate, AcceptedPerSec: res.AcceptedPerSec, Errors: res.Errors,
			MaxSendLagMS: float64(res.MaxLag) / 1e6, Latency: stats.Summarise(res.Latency), CPU: cpu, PeakConns: res.PeakConns}
		if res.Errors > 0 {
			errs = append(errs, fmt.Errorf("%d%%: %d errors: %v", pct, res.Errors, res.ErrorsBy))
		}
		if pct == r.cfg.E2EPercent {
			raw, err := r.rawConfirmLatency(ctx, rate)
			if err != nil {
				errs = append(errs, fmt.Errorf("raw confirm latency at %d/s: %w", rate, err))
			} else {
				f.RawConfirm = &raw
			}
		}
		r.log.Info("fixed rate", "percent", pct, "rate", rate, "accepted_per_sec", round(f.AcceptedPerSec),
			"p50_ms", f.Latency.P50, "p99_ms", f.Latency.P99, "p99_9_ms", f.Latency.P999)
		r.res.Fixed = append(r.res.Fixed, f)
	}
	errs = append(errs, r.stop(ing, "3 ingress fixed"))
	return errors.Join(errs...)
}

// rawConfirmLatency publishes with amqp091-go alone at rate into a scratch
// quorum queue for FixedDuration and summarises the confirm latencies.
func (r *Runner) rawConfirmLatency(ctx context.Context, rate int) (stats.Latency, error) {
	queue := r.prefix("rawrate")
	if err := rawamqp.DeclareScratch(r.conn, queue); err != nil {
		return stats.Latency{}, err
	}
	defer func() {
		if err := rawamqp.DeleteQueue(r.conn, queue); err != nil {
			r.log.Warn("clean-up", "err", err)
		}
	}()
	conn, err := amqp.Dial(r.cfg.AMQPURL)
	if err != nil {
		return stats.Latency{}, err
	}
	defer conn.Close()
	res, err := rawamqp.PublishAtRate(ctx, conn, queue, rate, r.cfg.FixedDuration.D(), r.message(queue))
	skip := int(float64(rate) * r.cfg.Warmup.D().Seconds())
	if skip < len(res.Latency) {
		res.Latency = res.Latency[skip:]
	}
	return stats.Summarise(res.Latency), err
}

// endToEnd is phase 4 (flaky false) and phase 7 (flaky true): ingress,
// forwarder and sink under a fixed rate; every accepted id must arrive.
func (r *Runner) endToEnd(ctx context.Context, flaky bool) error {
	rate, err := r.maxRate(r.cfg.E2EPercent)
	if err != nil {
		return err
	}
	name, phase, mode := "e2e", "4 end to end", sink.Mode{}
	if flaky {
		name, phase, mode = "flaky", "7 flaky backend", sink.Mode{FailFirst: r.cfg.FlakyRate}
	}
	prefix := r.prefix(name)
	if err := r.sink.Reset(mode); err != nil {
		return err
	}
	fwd, err := r.startForwarder(ctx, prefix, r.cfg.ForwarderConcurrency)
	if err != nil {
		return err
	}
	topo := r.topology(prefix)
	defer r.deleteTopology(topo)
	ing, err := r.startIngress(ctx, prefix)
	if err != nil {
		return err
	}
	meter := r.meter(ing, fwd)
	lr, err := load.Run(ctx, load.Options{
		URL: "http://" + ing.Addr + "/catering/register", Payload: r.payload,
		IDs: prefix, Rate: rate, Duration: r.cfg.E2EDuration.D(), Warmup: r.cfg.Warmup.D(),
	})
	cpu := meter.Stop()
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, r.stop(ing, phase))
	if err := r.sink.WaitDelivered(ctx, lr.Accepted, r.cfg.DrainTimeout.D()); err != nil {
		errs = append(errs, err)
	}
	opened := -1
	if v, ok := scrape(fwd.Addr, `relay_forwarder_circuit_transitions_total{to="open"}`); ok {
		opened = int(v)
	}
	errs = append(errs, r.stop(fwd, phase))

	arrived, err := r.sink.Arrivals()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	counts, err := r.sink.Counts()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	e := &E2E{Rate: rate, Accepted: lr.Accepted, Errors: lr.Errors, ErrorsBy: lr.ErrorsBy, Sink: counts,
		AcceptLatency: stats.Summarise(lr.Latency), CPU: cpu, PeakConns: lr.PeakConns, BreakerOpened: opened}
	from, to := lr.Start.Add(r.cfg.Warmup.D()), lr.Start.Add(r.cfg.E2EDuration.D())
	var a2d, s2d []time.Duration
	var inWindow int
	for id, acceptedAt := range lr.AcceptedAt {
		at, ok := arrived[id]
		if !ok {
			e.Undelivered++
			continue
		}
		e.Delivered++
		if !at.Before(from) && !at.After(to) {
			inWindow++
		}
		if lr.SentAt[id].Before(from) {
			continue // warm-up
		}
		d := at.Sub(acceptedAt)
		if d < 0 {
			e.EarlyDeliveries++
			d = 0
		}
		a2d = append(a2d, d)
		s2d = append(s2d, at.Sub(lr.SentAt[id]))
	}
	if dead, err := rawamqp.Depth(r.conn, topo.DeadQueue); err == nil {
		e.DeadLettered = dead
	}
	if e.Undelivered > 0 {
		// Not delivered is not lost while the broker still holds it (the
		// forwarder is stopped, so nothing is unacked): look.
		queued, err := rawamqp.TakeIDs(ctx, r.conn, topo.QueueNames())
		if err != nil {
			errs = append(errs, fmt.Errorf("inspect what is still queued: %w", err))
		}
		for id := range lr.AcceptedAt {
			if _, ok := arrived[id]; !ok && queued[id] {
				e.StillQueued++
			}
		}
	}
	e.Lost = e.Undelivered - e.StillQueued
	e.DeliveredPerSec = stats.Rate(inWindow, to.Sub(from))
	e.Timeline = timeline(lr.Start, lr.AcceptedAt, arrived)
	e.AcceptToDelivery, e.SendToDelivery = stats.Summarise(a2d), stats.Summarise(s2d)
	if flaky {
		r.res.Flaky = e
	} else {
		r.res.E2E = e
	}
	r.log.Info(name, "rate", rate, "accepted", e.Accepted, "delivered", e.Delivered, "lost", e.Lost,
		"delivered_per_sec", round(e.DeliveredPerSec), "a2d_p50_ms", e.AcceptToDelivery.P50, "a2d_p99_ms", e.AcceptToDelivery.P99,
		"answered_500", e.Sink.Failed)
	if e.Undelivered > 0 {
		errs = append(errs, fmt.Errorf("%d of %d accepted registrations not delivered within %s after the load (%d still in the broker, %d lost)",
			e.Undelivered, e.Accepted, r.cfg.DrainTimeout.D(), e.StillQueued, e.Lost))
	}
	if lr.Errors > 0 {
		errs = append(errs, fmt.Errorf("%d requests not accepted: %v", lr.Errors, lr.ErrorsBy))
	}
	if e.Sink.Corrupt > 0 {
		errs = append(errs, fmt.Errorf("%d deliveries with a body that is not the one sent", e.Sink.Corrupt))
	}
	if e.DeadLettered > 0 {
		errs = append(errs, fmt.Errorf("%d messages dead-lettered", e.DeadLettered))
	}
	return errors.Join(errs...)
}

// backlogDrain is phase 5: Backlog messages queued, then the forwarder starts.
func (r *Runner) backlogDrain(ctx context.Context) error {
	prefix := r.prefix("drain")
	topo, cleanup, err := r.declare(prefix)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := r.fill(ctx, topo, r.cfg.Backlog, prefix); err != nil {
		return err
	}
	if err := r.sink.Reset(sink.Mode{}); err != nil {
		return err
	}
	fwd, err := r.startForwarder(ctx, prefix, r.cfg.DrainConcurrency)
	if err != nil {
		return err
	}
	meter := r.meter(fwd)
	waitErr := r.sink.WaitDelivered(ctx, r.cfg.Backlog, r.cfg.DrainTimeout.D())
	cpu := meter.Stop()
	stopErr := r.stop(fwd, "5 backlog drain")
	arrived, err := r.sink.Arrivals()
	if err != nil {
		return errors.Join(waitErr, stopErr, err)
	}
	var first, last time.Time
	for _, at := range arrived {
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	d := &Drain{Messages: len(arrived), Seconds: last.Sub(first).Seconds(), Concurrency: r.cfg.DrainConcurrency, CPU: cpu}
	d.PerSec = stats.Rate(len(arrived), last.Sub(first))
	r.res.Drain = d
	r.log.Info("drain", "messages", d.Messages, "seconds", d.Seconds, "per_sec", round(d.PerSec))
	return errors.Join(waitErr, stopErr)
}

// slowBackend is phase 6: a backend answering in SlowLatency, the forwarder
// at each concurrency, on a backlog deep enough never to run dry.
func (r *Runner) slowBackend(ctx context.Context) error {
	prefix := r.prefix("slow")
	topo, cleanup, err := r.declare(prefix)
	if err != nil {
		return err
	}
	defer cleanup()
	lat := r.cfg.SlowLatency.D()
	need := 0
	for _, c := range r.cfg.SlowConcurrency {
		little := float64(c) / lat.Seconds()
		need += int(math.Ceil(min(little, r.cpuBound()) * r.cfg.SlowDuration.D().Seconds() * 1.25))
	}
	if err := r.fill(ctx, topo, need, prefix); err != nil {
		return err
	}
	var errs []error
	for _, c := range r.cfg.SlowConcurrency {
		if err := r.sink.Reset(sink.Mode{Latency: lat}); err != nil {
			return errors.Join(append(errs, err)...)
		}
		fwd, err := r.startForwarder(ctx, prefix, c)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		ready := time.Now()
		if err := sleep(ctx, r.cfg.Warmup.D()); err != nil {
			return err
		}
		meter := r.meter(fwd)
		if err := sleep(ctx, r.cfg.SlowDuration.D()-r.cfg.Warmup.D()); err != nil {
			return err
		}
		cpu := meter.Stop()
		errs = append(errs, r.stop(fwd, "6 slow backend c="+strconv.Itoa(c)))
		from, to := ready.Add(r.cfg.Warmup.D()), ready.Add(r.cfg.SlowDuration.D())
		arrived, err := r.sink.Arrivals()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		n := 0
		for _, at := range arrived {
			if !at.Before(from) && !at.After(to) {
				n++
			}
		}
		little := float64(c) / lat.Seconds()
		s := Slow{Concurrency: c, PerSec: stats.Rate(n, to.Sub(from)), Little: little, Bound: min(little, r.cpuBound()), Delivered: n, CPU: cpu}
		r.res.Slow = append(r.res.Slow, s)
		r.log.Info("slow backend", "concurrency", c, "per_sec", round(s.PerSec), "little", round(little))
		if left, err := rawamqp.Depth(r.conn, topo.Queue); err == nil && left == 0 {
			errs = append(errs, fmt.Errorf("concurrency %d: the backlog ran dry; the figure is a lower bound", c))
		}
	}
	return errors.Join(errs...)
}

// cpuBound is the forwarder's rate with a backend that takes no time (phase
// 5), the most a slow backend's concurrency can buy on this machine.
func (r *Runner) cpuBound() float64 {
	if r.res.Drain != nil && r.res.Drain.PerSec > 0 {
		return r.res.Drain.PerSec
	}
	return math.Inf(1)
}

// memoryBacklog is phase 8: forwarder RSS with MemSmall and with MemLarge
// messages waiting. A slow backend keeps the backlog in place while RSS is
// sampled; the forwarder holds only its prefetch, whatever waits behind it.
func (r *Runner) memoryBacklog(ctx context.Context) error {
	prefix := r.prefix("mem")
	topo, cleanup, err := r.declare(prefix)
	if err != nil {
		return err
	}
	defer cleanup()
	m := &r.res.Memory
	m.BacklogSmall, m.BacklogLarge = r.cfg.MemSmall, r.cfg.MemLarge
	measure := func(label string) (rss float64, waiting int, err error) {
		if err := r.sink.Reset(sink.Mode{Latency: r.cfg.MemLatency.D()}); err != nil {
			return 0, 0, err
		}
		fwd, err := r.startForwarder(ctx, prefix, r.cfg.ForwarderConcurrency)
		if err != nil {
			return 0, 0, err
		}
		if err := sleep(ctx, r.cfg.MemHold.D()); err != nil {
			return 0, 0, err
		}
		peak := fwd.Mem().Peak
		waiting, _ = rawamqp.Depth(r.conn, topo.Queue)
		err = r.stop(fwd, "8 backlog "+label)
		return mib(peak), waiting, err
	}
	if err := r.fill(ctx, topo, r.cfg.MemSmall, prefix+".s"); err != nil {
		return err
	}
	var errSmall, errLarge error
	m.RSSSmallMiB, m.WaitingAtSmall, errSmall = measure(strconv.Itoa(r.cfg.MemSmall))
	depth, err := rawamqp.Depth(r.conn, topo.Queue)
	if err != nil {
		return err
	}
	if err := r.fill(ctx, topo, r.cfg.MemLarge-depth, prefix+".l"); err != nil {
		return err
	}
	m.RSSLargeMiB, m.WaitingAtLarge, errLarge = measure(strconv.Itoa(r.cfg.MemLarge))
	m.BacklogMeasured = errSmall == nil && errLarge == nil
	r.log.Info("memory vs backlog", "small", m.BacklogSmall, "rss_small_mib", m.RSSSmallMiB,
		"large", m.BacklogLarge, "rss_large_mib", m.RSSLargeMiB)
	return errors.Join(errSmall, errLarge)
}

// timeline buckets accepts and deliveries by whole seconds since start.
func timeline(start time.Time, accepted, delivered map[string]time.Time) []Second {
	var out []Second
	bump := func(at time.Time, f func(*Second)) {
		i := max(int(at.Sub(start)/time.Second), 0)
		for len(out) <= i {
			out = append(out, Second{At: len(out)})
		}
		f(&out[i])
	}
	for _, at := range accepted {
		bump(at, func(s *Second) { s.Accepted++ })
	}
	for id, at := range delivered {
		if _, ok := accepted[id]; ok {
			bump(at, func(s *Second) { s.Delivered++ })
		}
	}
	return out
}

func round(v float64) float64 { return math.Round(v*10) / 10 }
