package deadletter

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// scan takes the messages of one queue, one by one and unacknowledged, on a
// channel of its own; see the package documentation for why nothing is
// requeued before the end.
type scan struct {
	ch        *amqp.Channel
	queue     string
	remaining int // messages the queue held when the scan began, not yet taken
}

func openScan(conn *amqp.Connection, queue string) (*scan, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	q, err := ch.QueueDeclarePassive(queue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil)
	if err != nil {
		_ = ch.Close() // the broker closed it already (404)
		return nil, fmt.Errorf("inspect queue %q: %w", queue, err)
	}
	return &scan{ch: ch, queue: queue, remaining: q.Messages}, nil
}

// next returns the next message, or false when the scan is through: every
// message the queue held at the start was taken, the queue ran dry earlier
// (another scan holds the rest), or ctx ended (the error says so).
func (s *scan) next(ctx context.Context) (amqp.Delivery, bool, error) {
	if s.remaining <= 0 {
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
		s.remaining = 0
		return amqp.Delivery{}, false, nil
	}
	s.remaining--
	return d, true, nil
}

// close requeues every message taken and not acknowledged, each to its old
// place, by closing the channel. The broker requeues a closed channel's
// messages all at once before it confirms the close, so the next scan sees
// them. (A basic.nack of all of them does the same far more slowly: RabbitMQ
// 3.x takes seconds for a few thousand, growing with the square of their
// number.) Callers must not ack after close.
func (s *scan) close() error {
	if err := s.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("requeue browsed messages of %q: %w", s.queue, err)
	}
	return nil
}
