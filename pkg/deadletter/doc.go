// Package deadletter inspects and empties relay's dead-letter queue over
// AMQP: List and Find browse it, Count counts, Redrive sends letters back to
// the main queue for a fresh round of attempts, Purge deletes them. relayctl
// and the forwarder's scheduled redrive share it.
//
// # Browsing loses nothing
//
// Every operation scans on a channel of its own: it takes messages with
// basic.get, without acknowledging them, and looks at each. Messages it does
// not act on stay unacknowledged until the scan ends, and the scan always
// takes every ready message, even when it needed only the first few; then
// one basic.nack (multiple, requeue) puts all it holds back, in their order.
// The dead-letter queue is a quorum queue (see package topology), and a
// quorum queue puts requeued messages behind the ones it holds ready, and a
// closed channel's messages back in no particular order (RabbitMQ 3.10):
// requeueing a few mid-scan, or closing the channel to requeue, would
// reorder the letters. Held, each message is seen once per scan. Only the
// letters a caller asked for are kept in memory; basic.get, unlike a
// consumer, never has the broker push more than was asked for.
//
// A scan costs a round trip per letter (a few thousand letters a second on a
// quiet broker). A scan that holds letters longer than the broker's
// consumer_timeout (30 minutes by default), such as a slow --rate redrive of
// a few letters among very many, can be ended by the broker: it stops with an
// error, and the letters it held go back, none lost (but in no particular
// order).
//
// Each requeue counts as a delivery of the letter (the x-delivery-count
// header, which Letter leaves out). The queue's delivery limit is a billion,
// so browsing never makes the broker drop a letter, on 3.x or on 4.x (whose
// default limit, 20, would).
//
// Every function may run concurrently with others on the same connection:
// each opens channels of its own and closes them before it returns. While a
// scan holds messages, another scan (a second relayctl, a forwarder's
// scheduled redrive) does not see them; it sees the rest. Cancelling ctx
// stops a scan; letters not yet acted on stay where they are.
//
// # Redrive: confirm first, ack second
//
// Redrive publishes a copy of each selected letter to the main exchange with
// publisher confirms, and acknowledges (deletes) the dead letter only after
// the broker confirmed the copy. A crash in between leaves both: the letter
// may be delivered twice (the backend dedupes on Idempotency-Key), but it is
// never lost. The copy starts over: no attempt count, no dead-letter headers;
// the x-relay-redrive-count and x-relay-previous-* headers (see package
// envelope) keep its history.
package deadletter
