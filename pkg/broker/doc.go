// Package broker keeps relay connected to RabbitMQ and publishes with
// confirms.
//
// Run owns the connection: it dials, hands the connection to a session
// function, and when the connection is lost it dials again with exponential
// backoff and jitter, forever, until its context ends. Every session starts
// from scratch on a fresh connection (declare topology, open channels,
// consume), so no delivery tag or pending confirm ever crosses a reconnect.
//
// Publisher publishes persistent, mandatory messages and waits for the
// broker's confirm. Many goroutines share a few channels: each publish takes a
// channel's lock only to write its frames, then waits for its own confirm
// outside any lock, so confirms are pipelined. A message is reported stored
// only when the broker acked it and did not return it as unroutable.
//
// CombineWrites wraps amqp.Config.Dial so that concurrent publishes and acks
// share system calls instead of flushing one write(2) each.
package broker
