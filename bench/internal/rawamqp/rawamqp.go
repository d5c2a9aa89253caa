// Package rawamqp drives RabbitMQ directly with amqp091-go, without relay's
// code: it measures the broker's own ceiling on this machine (confirmed
// publishing, consume with manual acks) and fills queues for the backlog
// phases.
//
// The publisher pipelines: each channel keeps up to Window messages
// unconfirmed, so the broker, not the round trip, sets the pace. Messages are
// built by envelope.New, persistent and mandatory, exactly as the ingress
// publishes them.
package rawamqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/envelope"
)

// Message returns the id and body of the i-th message (0-based).
type Message func(i int) (id string, body []byte)

// PublishOptions configure Publish.
type PublishOptions struct {
	Exchange, Key string
	Channels      int           // concurrent confirm-mode channels on one connection
	Window        int           // unconfirmed messages per channel
	Count         int           // stop after this many; 0: no limit
	Duration      time.Duration // stop publishing after this long; 0: no limit
	Message       Message
}

// PublishResult is what the broker confirmed.
type PublishResult struct {
	Confirmed int           // acked by the broker
	Refused   int           // nacked or returned unroutable
	Elapsed   time.Duration // first publish to last confirm
}

// Rate is confirmed messages per second.
func (r PublishResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Confirmed) / r.Elapsed.Seconds()
}

// confirmWait bounds the wait for the last confirms after publishing stopped.
const confirmWait = 30 * time.Second

// Publish publishes on conn until Count messages were sent or Duration passed,
// and waits for every confirm.
func Publish(ctx context.Context, conn *amqp.Connection, o PublishOptions) (PublishResult, error) {
	if o.Count == 0 && o.Duration == 0 {
		return PublishResult{}, errors.New("publish: set Count or Duration")
	}
	var (
		next      atomic.Int64 // index of the next message to publish
		confirmed atomic.Int64
		refused   atomic.Int64
		lastMu    sync.Mutex
		last      time.Time
	)
	start := time.Now()
	var stopAt time.Time
	if o.Duration > 0 {
		stopAt = start.Add(o.Duration)
	}
	channels := max(o.Channels, 1)
	errs := make(chan error, channels)
	var wg sync.WaitGroup
	for range channels {
		wg.Go(func() {
			ch, err := conn.Channel()
			if err != nil {
				errs <- fmt.Errorf("open channel: %w", err)
				return
			}
			defer ch.Close()
			if err := ch.Confirm(false /* noWait */); err != nil {
				errs <- fmt.Errorf("confirm mode: %w", err)
				return
			}
			window := max(o.Window, 1)
			slots := make(chan struct{}, window)
			// Buffered and always drained: the library's reader goroutine hands
			// these over and must never wait on us.
			confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
			returns := ch.NotifyReturn(make(chan amqp.Return, window))
			var settled sync.WaitGroup
			settled.Go(func() {
				for range returns {
					refused.Add(1)
				}
			})
			settled.Go(func() {
				for c := range confirms {
					if c.Ack {
						confirmed.Add(1)
					} else {
						refused.Add(1)
					}
					now := time.Now()
					lastMu.Lock()
					if now.After(last) {
						last = now
					}
					lastMu.Unlock()
					<-slots
				}
			})
			for ctx.Err() == nil && (stopAt.IsZero() || time.Now().Before(stopAt)) {
				i := int(next.Add(1) - 1)
				if o.Count > 0 && i >= o.Count {
					break
				}
				slots <- struct{}{}
				id, body := o.Message(i)
				msg := envelope.New(id, body, time.Now())
				if err := ch.PublishWithContext(ctx, o.Exchange, o.Key, true /* mandatory */, false /* immediate */, msg); err != nil {
					errs <- fmt.Errorf("publish: %w", err)
					return
				}
			}
			// Every slot back means every publish was confirmed.
			deadline := time.After(confirmWait)
			for range window {
				select {
				case slots <- struct{}{}:
				case <-deadline:
					errs <- fmt.Errorf("confirms still missing after %s", confirmWait)
					return
				}
			}
			_ = ch.Close()
			settled.Wait()
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	res := PublishResult{Confirmed: int(confirmed.Load()), Refused: int(refused.Load())}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	if res.Refused > 0 {
		all = append(all, fmt.Errorf("%d messages refused by the broker", res.Refused))
	}
	return res, errors.Join(all...)
}

// ConsumeResult is what a consume run acked.
type ConsumeResult struct {
	Acked   int
	Elapsed time.Duration // first delivery to last ack
}

// Rate is acked messages per second.
func (r ConsumeResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// Consume consumes queue with manual acks, one ack per message as the
// forwarder does, until n messages were acked or timeout passed.
func Consume(ctx context.Context, conn *amqp.Connection, queue string, prefetch, n int, timeout time.Duration) (ConsumeResult, error) {
	ch, err := conn.Channel()
	if err != nil {
		return ConsumeResult{}, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(prefetch, 0, false /* global */); err != nil {
		return ConsumeResult{}, fmt.Errorf("qos: %w", err)
	}
	deliveries, err := ch.Consume(queue, "", false /* autoAck */, false /* exclusive */, false /* noLocal */, false /* noWait */, nil)
	if err != nil {
		return ConsumeResult{}, fmt.Errorf("consume %s: %w", queue, err)
	}
	deadline := time.After(timeout)
	var res ConsumeResult
	var first time.Time
	for res.Acked < n {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return res, errors.New("consumer closed by the broker")
			}
			if first.IsZero() {
				first = time.Now()
			}
			if err := d.Ack(false /* multiple */); err != nil {
				return res, fmt.Errorf("ack: %w", err)
			}
			res.Acked++
			res.Elapsed = time.Since(first)
		case <-deadline:
			return res, fmt.Errorf("only %d of %d messages consumed within %s", res.Acked, n, timeout)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	return res, nil
}

// DeclareScratch declares a durable quorum queue for the ceiling measurement.
func DeclareScratch(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	_, err = ch.QueueDeclare(name, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, args)
	if err != nil {
		return fmt.Errorf("declare %s: %w", name, err)
	}
	return nil
}

// DeleteQueue deletes name, messages and all.
func DeleteQueue(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueueDelete(name, false /* ifUnused */, false /* ifEmpty */, false /* noWait */); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// Depth returns the number of messages ready in name.
func Depth(conn *amqp.Connection, name string) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", name, err)
	}
	return q.Messages, nil
}

// TakeIDs consumes every message waiting in queues (auto-ack: they are
// removed) and returns their message ids: what is still inside the broker
// when a phase ends.
func TakeIDs(ctx context.Context, conn *amqp.Connection, queues []string) (map[string]bool, error) {
	ids := map[string]bool{}
	for _, q := range queues {
		depth, err := Depth(conn, q)
		if err != nil {
			return ids, err
		}
		if depth == 0 {
			continue
		}
		ch, err := conn.Channel()
		if err != nil {
			return ids, err
		}
		if err := ch.Qos(1000, 0, false /* global */); err != nil {
			ch.Close()
			return ids, err
		}
		deliveries, err := ch.Consume(q, "", true /* autoAck */, false /* exclusive */, false /* noLocal */, false /* noWait */, nil)
		if err != nil {
			ch.Close()
			return ids, fmt.Errorf("consume %s: %w", q, err)
		}
		timeout := time.After(30 * time.Second)
		for n := 0; n < depth; n++ {
			select {
			case d, ok := <-deliveries:
				if !ok {
					n = depth
					continue
				}
				ids[d.MessageId] = true
			case <-timeout:
				ch.Close()
				return ids, fmt.Errorf("took %d of %d messages from %s within 30s", n, depth, q)
			case <-ctx.Done():
				ch.Close()
				return ids, ctx.Err()
			}
		}
		ch.Close()
	}
	return ids, nil
}

// PaceResult is what PublishAtRate measured.
type PaceResult struct {
	Confirmed int
	// Latency of each confirm, from the publish's scheduled time (so a
	// publisher held up by the broker counts its wait).
	Latency []time.Duration
}

// PublishAtRate publishes to key on one confirm-mode channel at rate per
// second for d, one message at a time as its slot comes (no batching beyond
// what the rate gives), and measures each confirm's latency: the broker's own
// share of an accept, without HTTP.
func PublishAtRate(ctx context.Context, conn *amqp.Connection, key string, rate int, d time.Duration, message Message) (PaceResult, error) {
	ch, err := conn.Channel()
	if err != nil {
		return PaceResult{}, err
	}
	defer ch.Close()
	if err := ch.Confirm(false /* noWait */); err != nil {
		return PaceResult{}, err
	}
	n := int(float64(rate) * d.Seconds())
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, n+1))
	var mu sync.Mutex
	due := make([]time.Time, n+1) // by delivery tag, which starts at 1
	var res PaceResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range confirms {
			now := time.Now()
			mu.Lock()
			if c.Ack && int(c.DeliveryTag) <= n {
				res.Confirmed++
				res.Latency = append(res.Latency, now.Sub(due[c.DeliveryTag]))
			}
			finished := res.Confirmed == n
			mu.Unlock()
			if finished {
				return
			}
		}
	}()
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 1; i <= n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		id, body := message(i)
		mu.Lock()
		due[i] = at
		mu.Unlock()
		if err := ch.PublishWithContext(ctx, "", key, true /* mandatory */, false /* immediate */, envelope.New(id, body, time.Now())); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
	}
	select {
	case <-done:
	case <-time.After(confirmWait):
		return res, fmt.Errorf("confirms still missing after %s", confirmWait)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	return res, nil
}
