// Package topology declares relay's exchanges and queues on RabbitMQ, the same
// way from every service, and names them for everyone else.
//
// With the default prefix "catering" and the default retry schedule
// (1s × 5, four attempts) the topology is:
//
//	exchange catering (direct)            → quorum queue catering.registrations
//	                                         dead-letters to catering.dlx
//	default exchange → catering.registrations.retry.1s   (quorum, TTL 1s)
//	                   catering.registrations.retry.5s   (quorum, TTL 5s)
//	                   catering.registrations.retry.25s  (quorum, TTL 25s)
//	                     each dead-letters back to catering → catering.registrations
//	exchange catering.dlx (fanout)        → quorum queue catering.registrations.dead
//
// A message that waits for a retry sits in the tier whose TTL is its delay, so
// every message in a tier expires in arrival order: no head-of-line blocking
// as with per-message TTLs. Tiers and the main queue use at-least-once
// dead-lettering, so a message moving between them is never dropped.
//
// Every queue is a quorum queue, replicated over up to three nodes of a
// cluster (RabbitMQ's default on 3.10 and 4.x): nothing pins a queue to one
// node, and any one node can be lost. The dead-letter queue was a classic
// queue, on one node, before relay ran on clusters; Declare migrates an
// existing one (see migrate.go). Its delivery limit is set out of reach, so
// that browsing it (get, then requeue, each counting as a delivery) never
// makes the broker drop a letter, on 3.x or 4.x (where the default is 20).
package topology
