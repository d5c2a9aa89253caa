package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/railco/relay/bench/internal/flood"
	"github.com/railco/relay/bench/internal/load"
	"github.com/railco/relay/bench/internal/stats"
)

// floodRequest is what each flood connection sends once before it idles: a
// probe, as a client's pool warming up would, that stores nothing.
const floodRequest = "GET /healthz HTTP/1.1\r\nHost: relaybench\r\nUser-Agent: relaybench-flood\r\n\r\n"

// floodDialers open the flood's connections in parallel.
const floodDialers = 64

// floodHold is how long the flood is held before the clients run: longer than
// the ingress's reclaimIdleAfter (1s), so that its connections count as idle,
// not as a busy client's between two requests.
const floodHold = 2 * time.Second

// connectionFlood is phase 9: the ingress with its default connection limit;
// FloodClients well-behaved closed-loop clients alone; then FloodConns
// connections opened at once, each sending one request and then idling, and
// held (the ingress keeps what its limit allows and sheds the rest); the
// ingress's RSS with them; and the same clients again while the flood is held.
func (r *Runner) connectionFlood(ctx context.Context) error {
	// The flood's sockets, the clients' and the bench's own.
	if err := flood.RaiseOpenFiles(r.cfg.FloodConns + r.cfg.FloodClients + 1024); err != nil {
		return err
	}
	prefix := r.prefix("flood")
	ing, err := r.startIngress(ctx, prefix)
	if err != nil {
		return err
	}
	defer r.deleteTopology(r.topology(prefix))
	f := &Flood{Conns: r.cfg.FloodConns, Clients: r.cfg.FloodClients, Open: -1, Refused: -1, Reclaimed: -1}
	r.res.Flood = f
	clients := func(name string) (FloodRun, error) {
		meter := r.meter(ing)
		res, err := load.Run(ctx, load.Options{
			URL: "http://" + ing.Addr + "/catering/register", Payload: r.payload,
			IDs: prefix + "." + name, Connections: r.cfg.FloodClients,
			Duration: r.cfg.FloodDuration.D(), Warmup: r.cfg.Warmup.D(),
		})
		cpu := meter.Stop()
		if err != nil {
			return FloodRun{}, err
		}
		run := FloodRun{AcceptedPerSec: res.AcceptedPerSec, Errors: res.Errors, ErrorsBy: res.ErrorsBy,
			Latency: stats.Summarise(res.Latency), CPU: cpu}
		r.log.Info("flood clients", "run", name, "accepted_per_sec", round(run.AcceptedPerSec), "errors", run.Errors,
			"p50_ms", run.Latency.P50, "p99_ms", run.Latency.P99)
		if res.Errors > 0 {
			return run, fmt.Errorf("%s: %d requests not accepted: %v", name, res.Errors, res.ErrorsBy)
		}
		return run, nil
	}

	var errs []error
	f.Alone, err = clients("alone")
	if err != nil {
		errs = append(errs, err)
	}
	f.RSSBeforeMiB = mib(ing.Mem().RSS)
	ing.ResetPeak()
	held, opening, err := flood.Open(ctx, flood.Options{
		Addr: ing.Addr, Conns: r.cfg.FloodConns, Dialers: floodDialers,
		Request: floodRequest, Timeout: 10 * time.Second,
	})
	defer held.Close()
	f.Opening = opening
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := sleep(ctx, floodHold); err != nil {
		return errors.Join(append(errs, err)...)
	}
	f.RSSHeldMiB = mib(ing.Mem().RSS)
	f.AliveHeld = held.Alive()
	r.log.Info("flood open", "connected", opening.Connected, "answers", opening.Answers, "errors", opening.Errors,
		"seconds", round(opening.Seconds), "alive", f.AliveHeld, "ingress_rss_mib", round(f.RSSHeldMiB))

	f.During, err = clients("during")
	if err != nil {
		errs = append(errs, err)
	}
	f.PeakMiB = mib(ing.Mem().Peak)
	f.Alive = held.Alive()
	if v, ok := scrape(ing.AdminAddr, "relay_ingress_connections_open"); ok {
		f.Open = int(v) - 1 // less the scrape's own connection
	}
	if v, ok := scrape(ing.AdminAddr, `relay_ingress_connections_shed_total{action="refused"}`); ok {
		f.Refused = int(v)
	}
	if v, ok := scrape(ing.AdminAddr, `relay_ingress_connections_shed_total{action="reclaimed"}`); ok {
		f.Reclaimed = int(v)
	}
	r.log.Info("flood held", "alive", f.Alive, "ingress_open", f.Open, "refused", f.Refused, "reclaimed", f.Reclaimed,
		"peak_rss_mib", round(f.PeakMiB))
	held.Close()
	if _, err := r.stopUnrecorded(ing); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
