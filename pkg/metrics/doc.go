// Package metrics is the Prometheus plumbing both services share: a registry
// of their own with the Go and process collectors, its /metrics handler, and
// Queues, which exports the depth of every queue of the topology.
//
// Each service defines its own metrics (relay_ingress_*, relay_forwarder_*)
// in its internal/metrics package; only what both export lives here.
//
// # Queue depths without a broker round trip per scrape
//
// Queues keeps the values of its last poll and serves those to every scrape.
// It polls with passive queue declarations on a channel of its own, on the
// connection the service already has (Attach), every QUEUE_METRICS_INTERVAL:
// a handful of small RPCs, whatever the number of scrapers. While no
// connection is attached it exports nothing rather than stale numbers.
//
// Every replica of both services exports the same queues, so dashboards
// aggregate with max by (queue): any one live replica keeps the series up,
// which matters most when the other tier is down (no forwarder running while
// the main queue grows).
package metrics
