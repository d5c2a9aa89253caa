package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// scan takes the messages of one queue, one by one and unacknowledged, on a
// channel of its own; see the package documentation for why nothing is
// requeued before the end.
type scan struct {
	conn  *amqp.Connection
	ch    *amqp.Channel
	queue string
	done  bool
	taken []uint64 // delivery tags, in order
	acked acks     // by the scan's callers, through the deliveries
}

// acks are the delivery tags acked; the scan's callers may ack from several
// goroutines.
type acks struct {
	mu   sync.Mutex
	tags map[uint64]bool
}

func (a *acks) add(tag uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tags == nil {
		a.tags = map[uint64]bool{}
	}
	a.tags[tag] = true
}

func (a *acks) has(tag uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tags[tag]
}

func openScan(conn *amqp.Connection, queue string) (*scan, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	// The queue must exist; its message count does not matter (a quorum
	// queue's is a moment late): the scan runs until the queue has no
	// more ready messages.
	if _, err := ch.QueueDeclarePassive(queue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil); err != nil {
		_ = ch.Close() // the broker closed it already (404)
		return nil, fmt.Errorf("inspect queue %q: %w", queue, err)
	}
	return &scan{conn: conn, ch: ch, queue: queue}, nil
}

// next returns the next message, or false when the scan is through: the
// queue has no more ready messages (this scan holds all the rest, or another
// scan holds some), or ctx ended (the error says so).
func (s *scan) next(ctx context.Context) (amqp.Delivery, bool, error) {
	if s.done {
		return amqp.Delivery{}, false, nil
	}
	if err := ctx.Err(); err != nil {
		return amqp.Delivery{}, false, err
	}
	d, ok, err := s.ch.Get(s.queue, false /* autoAck */)
	if err != nil {
		return amqp.Delivery{}, false, fmt.Errorf("get from %q: %w", s.queue, err)
	}
	if !ok {
		s.done = true
		return amqp.Delivery{}, false, nil
	}
	s.taken = append(s.taken, d.DeliveryTag)
	d.Acknowledger = counting{d.Acknowledger, &s.acked}
	return d, true, nil
}

// drain takes, and leaves unacked, the rest of the messages the queue held
// when the scan began, so that close puts every one of them back together.
// A quorum queue puts messages back behind those it holds ready (RabbitMQ
// 3.10: a browse of the first few would move them to the end); all of them
// back at once come back in their order. It stops when ctx ends.
func (s *scan) drain(ctx context.Context) {
	for {
		if _, ok, err := s.next(ctx); err != nil || !ok {
			return
		}
	}
}

// counting records the acks of a scan's deliveries.
type counting struct {
	amqp.Acknowledger
	acked *acks
}

func (c counting) Ack(tag uint64, multiple bool) error {
	err := c.Acknowledger.Ack(tag, multiple)
	if err == nil {
		c.acked.add(tag) // the scans' callers ack one at a time
	}
	return err
}

// close requeues every message taken and not acknowledged, each to its old
// place, with one basic.nack of them all, then closes the channel. Closing
// alone would requeue them too, but a quorum queue (RabbitMQ 3.10) puts a
// closed channel's messages back in no particular order; a nack of many at
// once it puts back in their order, behind any it holds ready (which drain
// sees to: there are none). Callers must not ack after close.
func (s *scan) close() error {
	var errs []error
	last, held := uint64(0), 0 // the last message taken and not acked: nack it and all before
	for i := len(s.taken) - 1; i >= 0; i-- {
		if !s.acked.has(s.taken[i]) {
			if last == 0 {
				last = s.taken[i]
			}
			held++
		}
	}
	if last != 0 {
		if err := s.ch.Nack(last, true /* multiple */, true /* requeue */); err != nil {
			errs = append(errs, fmt.Errorf("requeue browsed messages of %q: %w", s.queue, err))
		}
	}
	if err := s.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		errs = append(errs, fmt.Errorf("requeue browsed messages of %q: %w", s.queue, err))
	}
	if held > 0 && len(errs) == 0 {
		s.waitCounted(held)
	}
	return errors.Join(errs...)
}

// A quorum queue takes a nack's messages back a moment after it answers,
// and counts them (queue.declare-ok) a moment after that: a count right
// after a scan would miss them. waitCounted polls, the broker telling no one
// when, until the queue counts at least the held messages ready, or
// requeueWait passed (another scan may have taken some meanwhile).
const (
	requeueWait = 5 * time.Second
	requeuePoll = 10 * time.Millisecond
)

func (s *scan) waitCounted(held int) {
	deadline := time.Now().Add(requeueWait)
	for time.Now().Before(deadline) {
		if n, err := depth(s.conn, s.queue); err != nil || n >= held {
			return
		}
		time.Sleep(requeuePoll)
	}
}
