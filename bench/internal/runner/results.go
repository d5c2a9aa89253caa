package runner

import (
	"time"

	"github.com/railco/relay/bench/internal/flood"
	"github.com/railco/relay/bench/internal/procs"
	"github.com/railco/relay/bench/internal/report"

	"github.com/railco/relay/bench/internal/sink"
	"github.com/railco/relay/bench/internal/stats"
)

// Results is everything one run measured; it is written as JSON.
type Results struct {
	Started  time.Time       `json:"started"`
	Seconds  float64         `json:"seconds"`
	Machine  Machine         `json:"machine"`
	Config   Config          `json:"config"`
	Broker   *Broker         `json:"broker_limit,omitempty"`
	Max      *Max            `json:"ingress_max,omitempty"`
	Fixed    []Fixed         `json:"ingress_fixed,omitempty"`
	E2E      *E2E            `json:"end_to_end,omitempty"`
	Drain    *Drain          `json:"backlog_drain,omitempty"`
	Slow     []Slow          `json:"slow_backend,omitempty"`
	Flaky    *E2E            `json:"flaky_backend,omitempty"`
	Memory   Memory          `json:"memory"`
	Flood    *Flood          `json:"connection_flood,omitempty"`
	Noise    Noise           `json:"noise"`
	Figures  []report.Figure `json:"figures"`
	Failures []string        `json:"failures"`
}

// Noise is how much of the machine the run did not have: CPU used by
// processes outside the benchmark and time the hypervisor gave to other
// machines (steal), worst and mean over the measured windows, in cores.
type Noise struct {
	Windows   int     `json:"windows"`
	MaxOther  float64 `json:"max_other_cores"`
	MeanOther float64 `json:"mean_other_cores"`
	MaxSteal  float64 `json:"max_steal_cores"`
	MeanSteal float64 `json:"mean_steal_cores"`
	// Noisy is set when other work or steal took more than noisyCores on
	// average: the figures are then lower bounds of what the machine can do.
	Noisy bool `json:"noisy"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	Broker    string `json:"broker"`
	Kernel    string `json:"kernel"`
	Commit    string `json:"commit"`
}

// Broker is phase 1: the broker's own ceiling with raw amqp091-go.
type Broker struct {
	Published     int         `json:"published"`
	PublishPerSec float64     `json:"publish_per_sec"`
	PublishCPU    procs.Usage `json:"publish_cpu"`
	Consumed      int         `json:"consumed"`
	ConsumePerSec float64     `json:"consume_ack_per_sec"`
	ConsumeCPU    procs.Usage `json:"consume_cpu"`
}

// Max is phase 2: the closed-loop sweep.
type Max struct {
	Sweep []MaxPoint `json:"sweep"`
	Best  MaxPoint   `json:"best"`
}

// MaxPoint is one closed-loop run.
type MaxPoint struct {
	Connections    int           `json:"connections"`
	AcceptedPerSec float64       `json:"accepted_per_sec"`
	Errors         int           `json:"errors"`
	Latency        stats.Latency `json:"accept_latency"`
	CPU            procs.Usage   `json:"cpu"`
	PeakConns      int           `json:"peak_ingress_connections"`
}

// Fixed is one phase-3 run at a fixed rate.
type Fixed struct {
	Percent        int           `json:"percent_of_max"`
	Rate           int           `json:"rate"`
	AcceptedPerSec float64       `json:"accepted_per_sec"`
	Errors         int           `json:"errors"`
	MaxSendLagMS   float64       `json:"max_send_lag_ms"`
	Latency        stats.Latency `json:"accept_latency"`
	// RawConfirm is the broker's confirm latency at the same rate with
	// amqp091-go alone (no HTTP, no ingress): the floor under Latency.
	RawConfirm *stats.Latency `json:"raw_confirm_latency,omitempty"`
	CPU        procs.Usage    `json:"cpu"`
	PeakConns  int            `json:"peak_ingress_connections"`
}

// E2E is phase 4 (and 7, with a flaky backend).
type E2E struct {
	Rate      int            `json:"rate"`
	Accepted  int            `json:"accepted"`
	Errors    int            `json:"errors"`
	ErrorsBy  map[string]int `json:"errors_by,omitempty"`
	Delivered int            `json:"delivered"`
	// Undelivered accepted ids had not reached the backend by the end of the
	// drain timeout; StillQueued of them were found in the broker (main
	// queue, retry tiers, dead letters) and Lost were nowhere.
	Undelivered  int `json:"undelivered"`
	StillQueued  int `json:"still_queued"`
	DeadLettered int `json:"dead_lettered"`
	Lost         int `json:"lost"`
	// BreakerOpened is how often the forwarder's circuit breaker opened
	// (paused every delivery), from its /metrics; -1 when not exported.
	BreakerOpened    int           `json:"breaker_opened"`
	Sink             sink.Counts   `json:"sink"`
	DeliveredPerSec  float64       `json:"delivered_per_sec"`
	AcceptLatency    stats.Latency `json:"accept_latency"`
	AcceptToDelivery stats.Latency `json:"accept_to_delivery"`
	SendToDelivery   stats.Latency `json:"send_to_delivery"`
	// EarlyDeliveries counts messages the backend had before the client had
	// its 202 (the broker delivers before it confirms); their
	// accept-to-delivery latency counts as 0.
	EarlyDeliveries int `json:"early_deliveries"`
	// Timeline counts accepts and first deliveries per second since the
	// load started: it shows whether delivery keeps pace or stalls.
	Timeline  []Second    `json:"timeline"`
	CPU       procs.Usage `json:"cpu"`
	PeakConns int         `json:"peak_ingress_connections"`
}

// Second is one second of a timeline.
type Second struct {
	At        int `json:"t"`
	Accepted  int `json:"accepted"`
	Delivered int `json:"delivered"`
}

// Drain is phase 5.
type Drain struct {
	Messages    int         `json:"messages"`
	Seconds     float64     `json:"seconds"`
	PerSec      float64     `json:"per_sec"`
	Concurrency int         `json:"forwarder_concurrency"`
	CPU         procs.Usage `json:"cpu"`
}

// Slow is one phase-6 run.
type Slow struct {
	Concurrency int     `json:"concurrency"`
	PerSec      float64 `json:"delivered_per_sec"`
	Little      float64 `json:"littles_law_per_sec"`
	// Bound is the lower of Little's law and the CPU limit (the no-latency
	// drain rate of phase 5): what the forwarder can be asked to reach.
	Bound     float64     `json:"bound_per_sec"`
	Delivered int         `json:"delivered_in_window"`
	CPU       procs.Usage `json:"cpu"`
}

// Memory is phase 8 plus every phase's peaks.
type Memory struct {
	Peaks []Peak `json:"peaks"`
	// Backlog: forwarder RSS with few and with many messages waiting.
	BacklogSmall    int     `json:"backlog_small"`
	BacklogLarge    int     `json:"backlog_large"`
	RSSSmallMiB     float64 `json:"rss_small_mib"`
	RSSLargeMiB     float64 `json:"rss_large_mib"`
	WaitingAtSmall  int     `json:"waiting_small_after"`
	WaitingAtLarge  int     `json:"waiting_large_after"`
	BacklogMeasured bool    `json:"backlog_measured"`
}

// Peak is a service's peak RSS in one phase.
type Peak struct {
	Phase   string  `json:"phase"`
	Service string  `json:"service"`
	MiB     float64 `json:"peak_rss_mib"`
}

// Flood is phase 9: idle keep-alive connections held open against the
// ingress, its memory with them, and well-behaved clients without and during
// the flood.
type Flood struct {
	Conns   int          `json:"connections"`
	Opening flood.Result `json:"opening"`
	// AliveHeld and Alive are how many flood connections the ingress still
	// held before and after the clients' run (it sheds what is over its limit
	// and closes idle ones to admit new connections).
	AliveHeld int `json:"alive_held"`
	Alive     int `json:"alive_after"`
	// RSSBeforeMiB is the ingress's RSS after the clients ran alone;
	// RSSHeldMiB once the flood had been held for a while; PeakMiB the most
	// from the flood's start to the end of the clients' run during it.
	RSSBeforeMiB float64 `json:"rss_before_mib"`
	RSSHeldMiB   float64 `json:"rss_held_mib"`
	PeakMiB      float64 `json:"peak_rss_mib"`
	// From the ingress's /metrics after the clients' run during the flood;
	// -1 when it does not export them.
	Open      int `json:"ingress_connections_open"`
	Refused   int `json:"ingress_connections_refused"`
	Reclaimed int `json:"ingress_connections_reclaimed"`

	Clients int `json:"clients"`
	// Alone and During are the clients' runs without and with the flood.
	Alone  FloodRun `json:"alone"`
	During FloodRun `json:"during"`
}

// FloodRun is one closed-loop run of the well-behaved clients.
type FloodRun struct {
	AcceptedPerSec float64        `json:"accepted_per_sec"`
	Errors         int            `json:"errors"`
	ErrorsBy       map[string]int `json:"errors_by,omitempty"`
	Latency        stats.Latency  `json:"accept_latency"`
	CPU            procs.Usage    `json:"cpu"`
}
