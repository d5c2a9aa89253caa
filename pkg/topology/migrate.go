package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The dead-letter queue was a classic queue before relay ran on clusters: it
// lives on one node, and losing that node's disk loses every dead letter.
// It is a quorum queue now, under the same name, so an existing classic one
// is migrated when a service declares the topology:
//
//  1. Take the migration lock: an exclusive queue (<dead>.migration-lock),
//     which the broker allows one connection in the cluster at a time and
//     drops with the connection. A service that finds it taken leaves the
//     dead-letter queue to the one migrating and goes on.
//  2. Declare the holding queue <dead>.migrating (classic, as the old one:
//     only a classic queue can be deleted if, and only if, it is empty) and
//     bind it to the dead-letter exchange; unbind the classic
//     queue. New dead letters land in the holding queue from now on.
//  3. Move every letter, in order, from the classic queue to the holding
//     queue; delete the classic queue once it is empty.
//  4. Declare the quorum dead-letter queue, move the holding queue's
//     letters into it, then bind it to the dead-letter exchange and unbind
//     the holding queue, move the few that came in meanwhile, and delete the
//     holding queue once it is empty.
//
// Every move publishes a copy with confirms and acks the original only after
// the confirm, so a crash anywhere can duplicate a letter, never lose one.
// Each step can be repeated: a service that starts after a crash finds the
// classic queue or the holding queue still there and carries on. While no
// queue is bound to the exchange (between the two bindings of step 4), a
// dead letter cannot be routed: the forwarder publishes its dead letters
// mandatory and retries a returned one, and the broker keeps at-least-once
// dead letters of quorum queues until they can be routed.

// holdingQueue and lockQueue name the migration's queues.
func (t *Topology) holdingQueue() string { return t.DeadQueue + ".migrating" }
func (t *Topology) lockQueue() string    { return t.DeadQueue + ".migration-lock" }

// holdingArgs declare the holding queue.
var holdingArgs = amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic}

// moveBatch is how many letters one round of a move takes before it waits
// for their confirms and acks them.
const moveBatch = 256

// moveTimeout bounds the wait for one batch's confirms.
const moveTimeout = 30 * time.Second

// declareDead declares the dead-letter queue and binds it, migrating a
// classic one (or finishing an interrupted migration) first. It returns the
// number of letters migrated.
func (t *Topology) declareDead(conn *amqp.Connection) (int, error) {
	pending, err := t.migrationPending(conn)
	if err != nil {
		return 0, err
	}
	if !pending {
		return 0, t.declareAndBindDead(conn)
	}
	lock, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer lock.Close()
	_, err = lock.QueueDeclare(t.lockQueue(), false /* durable */, true /* autoDelete */, true /* exclusive */, false /* noWait */, nil)
	if err != nil {
		var amqpErr *amqp.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp.ResourceLocked {
			return 0, nil // another service is migrating: the dead-letter queue is its business now
		}
		return 0, fmt.Errorf("take the migration lock %q: %w", t.lockQueue(), err)
	}
	defer lock.QueueDelete(t.lockQueue(), false /* ifUnused */, false /* ifEmpty */, false /* noWait */) //nolint:errcheck // else it goes with the connection
	return t.migrate(conn)
}

// migrationPending reports whether a classic dead-letter queue or a holding
// queue exists.
func (t *Topology) migrationPending(conn *amqp.Connection) (bool, error) {
	classic, err := t.deadIsClassic(conn)
	if err != nil || classic {
		return classic, err
	}
	return t.exists(conn, t.holdingQueue())
}

// deadIsClassic reports whether the dead-letter queue exists as a classic
// queue. Declaring it as the quorum queue it should be tells: the broker
// refuses the queue type of an existing classic queue.
func (t *Topology) deadIsClassic(conn *amqp.Connection) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(t.DeadQueue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, t.deadArgs())
	if err == nil {
		return false, nil
	}
	err = declareError("queue", t.DeadQueue, err)
	var mismatch *MismatchError
	if !errors.As(err, &mismatch) {
		return false, err
	}
	// Some argument differs: it is the old classic queue if it declares as one.
	probe, cerr := conn.Channel()
	if cerr != nil {
		return false, fmt.Errorf("open channel: %w", cerr)
	}
	defer probe.Close()
	classic := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic}
	if _, cerr := probe.QueueDeclare(t.DeadQueue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, classic); cerr != nil {
		return false, err // neither: the operator's business, as for any other queue
	}
	return true, nil
}

// exists reports whether queue exists.
func (t *Topology) exists(conn *amqp.Connection, queue string) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(queue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil)
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect queue %q: %w", queue, err)
	}
	return true, nil
}

func (t *Topology) declareAndBindDead(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(t.DeadQueue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, t.deadArgs()); err != nil {
		return declareError("queue", t.DeadQueue, err)
	}
	if err := ch.QueueBind(t.DeadQueue, "", t.DeadExchange, false /* noWait */, nil); err != nil {
		return fmt.Errorf("bind %s to %s: %w", t.DeadQueue, t.DeadExchange, err)
	}
	return nil
}

// migrate runs steps 2 to 4 above; the caller holds the lock.
func (t *Topology) migrate(conn *amqp.Connection) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	holding := t.holdingQueue()
	if _, err := ch.QueueDeclare(holding, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, holdingArgs); err != nil {
		return 0, declareError("queue", holding, err)
	}
	classic, err := t.deadIsClassic(conn)
	if err != nil {
		return 0, err
	}
	moved := 0
	if classic {
		if err := ch.QueueBind(holding, "", t.DeadExchange, false /* noWait */, nil); err != nil {
			return 0, fmt.Errorf("bind %s to %s: %w", holding, t.DeadExchange, err)
		}
		if err := ch.QueueUnbind(t.DeadQueue, "", t.DeadExchange, nil); err != nil {
			return 0, fmt.Errorf("unbind %s from %s: %w", t.DeadQueue, t.DeadExchange, err)
		}
		n, err := move(conn, t.DeadQueue, holding)
		moved += n
		if err != nil {
			return moved, err
		}
		if _, err := ch.QueueDelete(t.DeadQueue, false /* ifUnused */, true /* ifEmpty */, false /* noWait */); err != nil {
			return moved, fmt.Errorf("delete the classic %s: %w", t.DeadQueue, err)
		}
	}
	if _, err := ch.QueueDeclare(t.DeadQueue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, t.deadArgs()); err != nil {
		return moved, declareError("queue", t.DeadQueue, err)
	}
	// The holding queue keeps taking new letters until the old ones are over,
	// so that they stay behind them.
	if _, err := move(conn, holding, t.DeadQueue); err != nil {
		return moved, err
	}
	if err := ch.QueueBind(t.DeadQueue, "", t.DeadExchange, false /* noWait */, nil); err != nil {
		return moved, fmt.Errorf("bind %s to %s: %w", t.DeadQueue, t.DeadExchange, err)
	}
	if err := ch.QueueUnbind(holding, "", t.DeadExchange, nil); err != nil {
		return moved, fmt.Errorf("unbind %s from %s: %w", holding, t.DeadExchange, err)
	}
	if _, err := move(conn, holding, t.DeadQueue); err != nil {
		return moved, err
	}
	if _, err := ch.QueueDelete(holding, false /* ifUnused */, true /* ifEmpty */, false /* noWait */); err != nil {
		return moved, fmt.Errorf("delete %s: %w", holding, err)
	}
	return moved, nil
}

// move moves every message of from to the end of to, in order, in batches:
// take up to moveBatch (unacked), publish each copy with confirms on one
// channel, wait for every confirm, then ack the batch. A copy the broker
// returns (no such queue) or nacks stops the move with its original unacked,
// so it comes back to from when the channel closes.
func move(conn *amqp.Connection, from, to string) (int, error) {
	get, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer get.Close()
	pub, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer pub.Close()
	if err := pub.Confirm(false /* noWait */); err != nil {
		return 0, fmt.Errorf("confirm mode: %w", err)
	}
	returned := pub.NotifyReturn(make(chan amqp.Return, moveBatch))
	moved := 0
	for {
		var last uint64
		confirms := make([]*amqp.DeferredConfirmation, 0, moveBatch)
		for len(confirms) < moveBatch {
			d, ok, err := get.Get(from, false /* autoAck */)
			if err != nil {
				return moved, fmt.Errorf("get from %s: %w", from, err)
			}
			if !ok {
				break
			}
			dc, err := pub.PublishWithDeferredConfirm("", to, true /* mandatory */, false /* immediate */, copyOf(d))
			if err != nil {
				return moved, fmt.Errorf("publish to %s: %w", to, err)
			}
			confirms = append(confirms, dc)
			last = d.DeliveryTag
		}
		if len(confirms) == 0 {
			return moved, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), moveTimeout)
		for _, dc := range confirms {
			ok, err := dc.WaitContext(ctx)
			if err != nil || !ok {
				cancel()
				return moved, fmt.Errorf("move from %s to %s: the broker did not confirm a copy (%v)", from, to, err)
			}
		}
		cancel()
		select {
		case r := <-returned:
			return moved, fmt.Errorf("move from %s to %s: the broker returned a copy: %d %s", from, to, r.ReplyCode, r.ReplyText)
		default: // a return comes before its confirm
		}
		if err := get.Ack(last, true /* multiple */); err != nil {
			return moved, fmt.Errorf("ack moved messages of %s: %w", from, err)
		}
		moved += len(confirms)
	}
}

// copyOf is the message d, to publish again as it was.
func copyOf(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{
		Headers:         d.Headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserId:          d.UserId,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}
