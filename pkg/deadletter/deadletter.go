package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/time/rate"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/topology"
)

// Result says what Redrive or Purge did.
type Result struct {
	Scanned int // letters looked at: at most the queue's depth when the operation began
	Matched int // of those, the ones the filter selected
	Done    int // of those, the ones redriven or purged; fewer than Matched only when an error stopped the operation
	// Missing lists the ids of Filter.IDs that no selected letter carried:
	// not in the queue, held by another scan, or excluded by the other fields
	// of the filter.
	Missing []string
}

// List returns the letters f selects, oldest first, and leaves every letter
// in the queue as it was.
func List(ctx context.Context, conn *amqp.Connection, topo *topology.Topology, f Filter) ([]Letter, error) {
	var out []Letter
	_, err := visit(ctx, conn, topo.DeadQueue, f, func(_ amqp.Delivery, l Letter) error {
		out = append(out, l)
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Find returns the letters with one of ids (a letter duplicated by
// at-least-once delivery comes once per copy), or none when ids is empty.
func Find(ctx context.Context, conn *amqp.Connection, topo *topology.Topology, ids ...string) ([]Letter, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return List(ctx, conn, topo, Filter{IDs: ids})
}

// Count returns how many letters f selects. For the zero Filter it asks the
// broker for the queue's depth instead of scanning.
func Count(ctx context.Context, conn *amqp.Connection, topo *topology.Topology, f Filter) (int, error) {
	if f.all() {
		return depth(conn, topo.DeadQueue)
	}
	res, err := visit(ctx, conn, topo.DeadQueue, f, func(amqp.Delivery, Letter) error { return nil }, nil)
	return res.Matched, err
}

// Purge deletes the letters f selects, for good. For the zero Filter it
// purges the queue in one step (letters another scan holds at that moment
// survive).
//
// With events on (topo.Events), every purged letter's purged event is
// published and confirmed before the letter is acked, so the whole queue is
// scanned letter by letter then.
func Purge(ctx context.Context, conn *amqp.Connection, topo *topology.Topology, f Filter) (Result, error) {
	var em *events.Emitter
	if topo.Events != "" {
		pub := broker.NewPublisher(1)
		if err := pub.Attach(conn); err != nil {
			return Result{}, err
		}
		defer pub.Detach()
		em = events.NewEmitter(pub, topo.Events, eventSource, confirmTimeout)
	}
	if f.all() && !em.On() {
		ch, err := conn.Channel()
		if err != nil {
			return Result{}, fmt.Errorf("open channel: %w", err)
		}
		defer ch.Close()
		n, err := ch.QueuePurge(topo.DeadQueue, false /* noWait */)
		if err != nil {
			return Result{}, fmt.Errorf("purge %q: %w", topo.DeadQueue, err)
		}
		return Result{Scanned: n, Matched: n, Done: n}, nil
	}
	done := 0
	res, err := visit(ctx, conn, topo.DeadQueue, f, func(d amqp.Delivery, l Letter) error {
		ev := events.Event{Type: events.TypePurged, ID: l.ID, AcceptedAt: events.TimePtr(l.AcceptedAt), Redrive: l.RedriveCount, Attempt: l.Attempts, Reason: l.Reason}
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout)
		err := em.Emit(ectx, ev)
		cancel()
		if err != nil {
			return fmt.Errorf("purge %s: %w", l.ID, err)
		}
		if err := d.Ack(false /* multiple */); err != nil {
			return fmt.Errorf("purge %s: %w", l.ID, err)
		}
		done++
		return nil
	}, nil)
	res.Done = done
	return res, err
}

const (
	// inFlight bounds the copies waiting for their confirm: enough to keep the
	// broker's write pipeline busy, few enough that a failure leaves little
	// behind to sort out.
	inFlight = 256
	// confirmTimeout bounds the wait for one copy's confirm. It does not follow
	// ctx: a cancelled redrive stops taking letters but lets the copies already
	// sent settle, rather than leave each behind twice.
	confirmTimeout = 30 * time.Second
)

// Redrive sends the letters f selects back to the main queue (topo.Exchange,
// routing key topo.Queue) for a fresh round of attempts, at most perSecond
// letters a second (0: as fast as the broker confirms). Each copy is
// published with confirms and the letter acked only after its confirm, so a
// failure at any point can duplicate a letter but never lose it. The first
// failed publish stops the redrive; its letter stays in the dead-letter queue.
func Redrive(ctx context.Context, conn *amqp.Connection, topo *topology.Topology, f Filter, perSecond float64) (Result, error) {
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		return Result{}, err
	}
	defer pub.Detach()
	every := rate.Inf
	if perSecond > 0 {
		every = rate.Limit(perSecond)
	}
	pace := rate.NewLimiter(every, 1)
	em := events.NewEmitter(pub, topo.Events, eventSource, confirmTimeout)

	var (
		pending sync.WaitGroup
		slots   = make(chan struct{}, inFlight)
		mu      sync.Mutex
		done    int
		failed  error
	)
	record := func(l Letter, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			done++
		} else if failed == nil {
			failed = fmt.Errorf("redrive %s: %w", l.ID, err)
		}
	}
	res, err := visit(ctx, conn, topo.DeadQueue, f, func(d amqp.Delivery, l Letter) error {
		mu.Lock()
		stop := failed != nil
		mu.Unlock()
		if stop {
			return errStop // the failure itself is reported once, below
		}
		if err := pace.Wait(ctx); err != nil {
			return err
		}
		now := time.Now()
		msg := redriven(d, l, now)
		ev := events.Event{Type: events.TypeRedriven, ID: l.ID, At: now, AcceptedAt: events.TimePtr(l.AcceptedAt), Redrive: l.RedriveCount + 1}
		slots <- struct{}{}
		pending.Go(func() {
			defer func() { <-slots }()
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout)
			defer cancel()
			// The copy and its redriven event at once; the letter is acked
			// only when both are confirmed.
			evErr := make(chan error, 1)
			go func() { evErr <- em.Emit(pctx, ev) }()
			if err := errors.Join(pub.Publish(pctx, topo.Exchange, topo.Queue, msg), <-evErr); err != nil {
				record(l, err)
				return
			}
			if err := d.Ack(false /* multiple */); err != nil {
				record(l, fmt.Errorf("copy stored, but the dead letter could not be acked and comes back (a duplicate): %w", err))
				return
			}
			record(l, nil)
		})
		return nil
	}, func() error {
		pending.Wait()
		return failed // no goroutine left to race with
	})
	res.Done = done
	return res, err
}

// eventSource names relay's dead-letter tools in the events they publish.
const eventSource = "deadletter"

// redriven returns the copy of dead letter d that Redrive publishes: same id,
// properties and body; no attempt count and no dead-letter headers, so the
// forwarder starts over at attempt 1; the last death's story under
// x-relay-previous-*; the redrive count one higher.
func redriven(d amqp.Delivery, l Letter, now time.Time) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+7)
	for k, v := range d.Headers {
		if !deadHeaders[k] {
			h[k] = v
		}
	}
	h[envelope.HeaderRedriveCount] = int32(l.RedriveCount + 1)
	h[envelope.HeaderRedrivenAt] = now.UTC().Format(time.RFC3339Nano)
	h[envelope.HeaderPreviousAttempts] = int32(l.Attempts)
	h[envelope.HeaderPreviousReason] = l.Reason
	h[envelope.HeaderPreviousLastStatus] = int32(l.LastStatus)
	h[envelope.HeaderPreviousLastError] = l.LastError
	delete(h, envelope.HeaderPreviousDeadAt) // a stale one from an earlier redrive
	if !l.DeadAt.IsZero() {
		h[envelope.HeaderPreviousDeadAt] = l.DeadAt.UTC().Format(time.RFC3339Nano)
	}
	return amqp.Publishing{
		MessageId:       l.ID,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		// Not Expiration (it would drop the copy) nor UserId (the broker
		// refuses one that is not the connection's user).
		Headers: h,
		Body:    d.Body,
	}
}

// deadHeaders are the headers a redrive drops: the attempt count and what
// the death added, relay's and the broker's.
var deadHeaders = map[string]bool{
	envelope.HeaderAttempts:       true,
	envelope.HeaderFirstAttemptAt: true,
	envelope.HeaderLastAttemptAt:  true,
	envelope.HeaderLastStatus:     true,
	envelope.HeaderLastError:      true,
	envelope.HeaderLastLocation:   true,
	envelope.HeaderReason:         true,
	envelope.HeaderMessageID:      true,
	envelope.HeaderDeadAt:         true,
	"x-death":                     true,
	"x-first-death-exchange":      true,
	"x-first-death-queue":         true,
	"x-first-death-reason":        true,
	"x-last-death-exchange":       true,
	"x-last-death-queue":          true,
	"x-last-death-reason":         true,
	deliveryCount:                 true,
}

// deliveryCount is the header a quorum queue adds to a message it delivers
// again: for a dead letter, how often it was browsed. Broker bookkeeping,
// not the letter's story.
const deliveryCount = "x-delivery-count"

// errStop, returned by a visit's fn, ends the visit without being an error.
var errStop = errors.New("stop")

// visit scans queue and calls fn with each letter f selects, until f's limit
// is reached, fn fails, or the scan is through. Then it calls settle, if set
// (fn may have left work running), and requeues every letter fn did not ack.
func visit(ctx context.Context, conn *amqp.Connection, queue string, f Filter,
	fn func(amqp.Delivery, Letter) error, settle func() error) (Result, error) {
	s, err := openScan(conn, queue)
	if err != nil {
		return Result{}, err
	}
	var res Result
	seen := map[string]bool{}
	var errs []error
	for !f.full(res.Matched) {
		d, ok, err := s.next(ctx)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if !ok {
			break
		}
		res.Scanned++
		l := newLetter(d)
		if !f.match(l) {
			continue
		}
		res.Matched++
		if len(f.IDs) > 0 {
			seen[l.ID] = true
		}
		if err := fn(d, l); err != nil {
			if !errors.Is(err, errStop) {
				errs = append(errs, err)
			}
			break
		}
	}
	s.drain(ctx)
	if settle != nil {
		if err := settle(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.close(); err != nil {
		errs = append(errs, err)
	}
	res.Missing = f.missing(seen)
	return res, errors.Join(errs...)
}

// depth returns how many ready messages queue holds.
func depth(conn *amqp.Connection, queue string) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect queue %q: %w", queue, err)
	}
	return q.Messages, nil
}
