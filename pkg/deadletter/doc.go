// Package deadletter inspects and empties relay's dead-letter queue over
// AMQP: List and Find browse it, Count counts, Redrive sends letters back to
// the main queue for a fresh round of attempts, Purge deletes them. relayctl
// and the forwarder's scheduled redrive share it.
//
// # Browsing loses nothing
//
// Every operation scans on a channel of its own: it takes messages with
// basic.get, without acknowledging them, and looks at each. Messages it does
// not act on stay unacknowledged until the scan ends, when closing the
// channel puts them all back, each at its old place (so does losing the
// connection). They must stay held until the end because a classic queue puts
// a requeued message back at its old place, at the head: requeued mid-scan,
// the next basic.get would return it again. Held, each message is seen once
// per scan, and the scan stops after as many messages as the queue held when
// it began, so letters that arrive meanwhile wait for the next scan. Only the
// letters a caller asked for are kept in memory; basic.get, unlike a
// consumer, never has the broker push more than was asked for.
//
// A scan costs a round trip per letter (a few thousand letters a second on a
// quiet broker). A scan that holds letters longer than the broker's
// consumer_timeout (30 minutes by default), such as a slow --rate redrive of
// a few letters among very many, can be ended by the broker: it stops with an
// error, and the letters it held go back, none lost.
//
// The dead-letter queue is a classic queue (see package topology), which has
// no delivery limit: requeueing any number of times never makes the broker
// drop or dead-letter a letter.
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
