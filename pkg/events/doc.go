// Package events is the record of every registration's life: the schema of
// the events relay publishes to its event stream (topology.Topology.Events),
// how they are published, and how one registration's events fold into its
// status and attempt history (Fold).
//
// Invariants, before the API:
//
//   - The stream is the source of truth; indexes (the ingress's) are built
//     from it and can be rebuilt from it.
//   - An event is published with a publisher confirm. The forwarder acks a
//     delivery only after the broker confirmed its delivered or
//     dead_lettered event (and every other event of that attempt), so a
//     crash can duplicate events but never lose one. Fold shows a repeated
//     attempt (same redrive generation and attempt number) as a duplicate.
//   - Events of one registration may reach the stream out of order (they
//     travel on several channels, from several processes): Fold orders them
//     by their place in the registration's life, not by arrival.
//   - The schema is versioned (Event.V); readers skip versions they do not
//     know. New optional fields may be added within a version.
//
// The wire format is one AMQP message per event: body the JSON of Event,
// content type application/json, type the event's Type, message id
// "<registration id>/<type>/<attempt>", header x-relay-event-version.
package events
