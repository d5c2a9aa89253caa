// Package redrive gives dead letters that ran out of attempts another round,
// on a schedule: an outage of the backend longer than the retry schedule
// then costs a delay, not an operator's evening with relayctl.
//
// Only letters dead for max-attempts come back; non-retryable (the backend
// refused them) and rejected-by-broker (a crash loop, a full queue) would
// only fail again. A letter comes back at most MaxRedrives times, counted by
// its x-relay-redrive-count header, so a true poison message ends up staying
// in the dead-letter queue for a person to look at.
package redrive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/deadletter"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

// Options configure a Redriver.
type Options struct {
	Interval    time.Duration // between two rounds; the first comes one Interval after connecting
	MaxRedrives int           // a letter redriven this many times stays dead
}

// Redriver redrives max-attempts dead letters every Interval.
type Redriver struct {
	opts Options
	topo *topology.Topology
	log  *slog.Logger
}

// New returns a Redriver for topo's dead-letter queue.
func New(opts Options, topo *topology.Topology, log *slog.Logger) *Redriver {
	return &Redriver{opts: opts, topo: topo, log: log}
}

// Run redrives a round every Interval on conn until ctx ends (it returns nil)
// or conn closes (an error wrapping broker.ErrConnectionLost). It is a
// broker.Session: a broker.Dialer runs it, so it runs only while connected.
// A round that fails is logged and the next one tries again; letters it did
// not move stay in the dead-letter queue.
func (r *Redriver) Run(ctx context.Context, conn *amqp.Connection) error {
	// Buffered: the library sends once, then closes it.
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			if err == nil {
				return broker.ErrConnectionLost
			}
			return fmt.Errorf("%w: %w", broker.ErrConnectionLost, err)
		case <-tick.C:
			if _, err := r.Round(ctx, conn); err != nil && !errors.Is(err, context.Canceled) {
				r.log.Warn("scheduled redrive failed; next round in "+r.opts.Interval.String(), "err", err)
			}
		}
	}
}

// Round redrives, once, every max-attempts dead letter redriven fewer than
// MaxRedrives times, and logs how many.
func (r *Redriver) Round(ctx context.Context, conn *amqp.Connection) (deadletter.Result, error) {
	f := deadletter.Filter{Reason: envelope.ReasonMaxAttempts, MaxRedrives: r.opts.MaxRedrives}
	res, err := deadletter.Redrive(ctx, conn, r.topo, f, 0)
	if err == nil || res.Done > 0 {
		r.log.Info(fmt.Sprintf("redrove %d dead letters (%s)", res.Done, envelope.ReasonMaxAttempts),
			"redriven", res.Done, "scanned", res.Scanned, "max_redrives", r.opts.MaxRedrives, "dead_queue", r.topo.DeadQueue)
	}
	return res, err
}
