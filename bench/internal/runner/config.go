package runner

import (
	"errors"
	"flag"
	"time"
)

// Duration prints as "1.5s" in the results file.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is one run's settings; every field has a flag.
type Config struct {
	Repo    string `json:"-"`
	Out     string `json:"-"`
	AMQPURL string `json:"-"`
	Seed    string `json:"seed"`

	Warmup Duration `json:"warmup"`

	BrokerPublish  Duration `json:"broker_publish"`
	BrokerChannels int      `json:"broker_channels"`
	BrokerWindow   int      `json:"broker_window"`
	BrokerPrefetch int      `json:"broker_prefetch"`

	MaxConnections []int    `json:"max_connections"`
	MaxDuration    Duration `json:"max_duration"`

	FixedPercents []int    `json:"fixed_percents"`
	FixedDuration Duration `json:"fixed_duration"`

	E2EPercent   int      `json:"e2e_percent"`
	E2EDuration  Duration `json:"e2e_duration"`
	DrainTimeout Duration `json:"drain_timeout"`

	ForwarderConcurrency int      `json:"forwarder_concurrency"`
	PrefetchFactor       float64  `json:"prefetch_factor,omitempty"`
	RetryInitial         Duration `json:"retry_initial_interval"`

	Backlog          int `json:"backlog"`
	DrainConcurrency int `json:"drain_concurrency"`

	SlowLatency     Duration `json:"slow_latency"`
	SlowConcurrency []int    `json:"slow_concurrency"`
	SlowDuration    Duration `json:"slow_duration"`

	FlakyRate float64 `json:"flaky_first_attempt_failure_rate"`

	MemSmall   int      `json:"mem_backlog_small"`
	MemLarge   int      `json:"mem_backlog_large"`
	MemLatency Duration `json:"mem_backend_latency"`
	MemHold    Duration `json:"mem_hold"`

	FloodConns    int      `json:"flood_connections"`
	FloodClients  int      `json:"flood_clients"`
	FloodDuration Duration `json:"flood_duration"`

	IngressEnv   envList `json:"ingress_env,omitempty"`
	ForwarderEnv envList `json:"forwarder_env,omitempty"`

	AssumeMax float64 `json:"assume_max,omitempty"`

	Phases []int `json:"phases"`
	Strict bool  `json:"strict"`
}

// Register defines the flags on fs, with defaults that keep the whole run
// under five minutes on a 2-core machine.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.Repo, "repo", "..", "root of the relay repository (services/ and test/ are read from there)")
	fs.StringVar(&c.Out, "out", "results", "directory for <timestamp>.json and the PNG charts")
	fs.StringVar(&c.AMQPURL, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL (the services get it as AMQP_URL)")
	fs.StringVar(&c.Seed, "seed", "test/e2e/testdata/seed.json", "payload, relative to -repo; its passengerId is made unique per request")
	dur(fs, &c.Warmup, "warmup", time.Second, "start of every load run left out of the figures")

	dur(fs, &c.BrokerPublish, "broker-publish", 8*time.Second, "phase 1: how long to publish raw")
	fs.IntVar(&c.BrokerChannels, "broker-channels", 4, "phase 1: publishing channels")
	fs.IntVar(&c.BrokerWindow, "broker-window", 256, "phase 1: unconfirmed messages per channel")
	fs.IntVar(&c.BrokerPrefetch, "broker-prefetch", 256, "phase 1: consumer prefetch (one ack per message)")

	ints(fs, &c.MaxConnections, "max-connections", []int{64, 128, 256}, "phase 2: closed-loop connection counts (comma-separated)")
	dur(fs, &c.MaxDuration, "max-duration", 6*time.Second, "phase 2: each closed-loop run, warm-up included")

	ints(fs, &c.FixedPercents, "fixed-percents", []int{25, 50, 75}, "phase 3: fixed rates as percent of the ingress max")
	dur(fs, &c.FixedDuration, "fixed-duration", 10*time.Second, "phase 3: each fixed-rate run, warm-up included")

	fs.IntVar(&c.E2EPercent, "e2e-percent", 50, "phases 4 and 7: offered rate as percent of the ingress max")
	dur(fs, &c.E2EDuration, "e2e-duration", 15*time.Second, "phases 4 and 7: load duration, warm-up included")
	dur(fs, &c.DrainTimeout, "drain-timeout", 30*time.Second, "how long to wait for the last deliveries")

	fs.IntVar(&c.ForwarderConcurrency, "forwarder-concurrency", 64, "FORWARDER_CONCURRENCY in phases 4, 7 and 8")
	fs.Float64Var(&c.PrefetchFactor, "prefetch-factor", 0, "FORWARDER_PREFETCH as a multiple of FORWARDER_CONCURRENCY in every phase; 0 leaves the service default (equal)")
	dur(fs, &c.RetryInitial, "retry-initial", time.Second, "RETRY_INITIAL_INTERVAL: the first retry tier's delay")

	fs.IntVar(&c.Backlog, "backlog", 50000, "phase 5: messages queued before the forwarder starts")
	fs.IntVar(&c.DrainConcurrency, "drain-concurrency", 256, "phase 5: FORWARDER_CONCURRENCY; its drain rate is also phase 6's CPU limit, so keep it at phase 6's highest concurrency")

	dur(fs, &c.SlowLatency, "slow-latency", 20*time.Millisecond, "phase 6: backend latency")
	ints(fs, &c.SlowConcurrency, "slow-concurrency", []int{16, 64, 256}, "phase 6: FORWARDER_CONCURRENCY values")
	dur(fs, &c.SlowDuration, "slow-duration", 6*time.Second, "phase 6: each run, warm-up included")

	fs.Float64Var(&c.FlakyRate, "flaky-rate", 0.2, "phase 7: fraction of first attempts answered 500")

	fs.IntVar(&c.MemSmall, "mem-small", 1000, "phase 8: small backlog")
	fs.IntVar(&c.MemLarge, "mem-large", 100000, "phase 8: large backlog")
	dur(fs, &c.MemLatency, "mem-latency", time.Second, "phase 8: backend latency, so the backlog stays while RSS is sampled")
	dur(fs, &c.MemHold, "mem-hold", 3*time.Second, "phase 8: how long RSS is sampled per backlog")

	fs.IntVar(&c.FloodConns, "flood-conns", 10000, "phase 9: idle keep-alive connections held open against the ingress")
	fs.IntVar(&c.FloodClients, "flood-clients", 32, "phase 9: well-behaved closed-loop clients, without and then during the flood")
	dur(fs, &c.FloodDuration, "flood-duration", 5*time.Second, "phase 9: each run of the well-behaved clients, warm-up included")

	fs.Var(&c.IngressEnv, "ingress-env", "KEY=VALUE added to the ingress's environment (repeatable), e.g. PUBLISHER_CHANNELS=8")
	fs.Var(&c.ForwarderEnv, "forwarder-env", "KEY=VALUE added to the forwarder's environment (repeatable), e.g. BREAKER_FAILURE_THRESHOLD=20")
	fs.Float64Var(&c.AssumeMax, "assume-max", 0, "ingress max (req/s) to scale phases 3, 4 and 7 from when phase 2 is not run")
	ints(fs, &c.Phases, "phases", []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, "phases to run (3, 4 and 7 scale from 2, or from -assume-max; 6 takes its CPU limit from 5); e.g. -phases 9 for the connection flood alone")
	fs.BoolVar(&c.Strict, "strict", false, "exit non-zero when a target is missed, not only when a phase fails")
}

// Validate reports settings that cannot make a run.
func (c Config) Validate() error {
	var errs []error
	for _, d := range []Duration{c.MaxDuration, c.FixedDuration, c.E2EDuration, c.SlowDuration, c.FloodDuration} {
		if d <= c.Warmup {
			errs = append(errs, errors.New("every load duration must exceed -warmup"))
			break
		}
	}
	if c.BrokerChannels < 1 || c.BrokerWindow < 1 || c.BrokerPrefetch < 1 {
		errs = append(errs, errors.New("-broker-channels, -broker-window and -broker-prefetch must be positive"))
	}
	if len(c.MaxConnections) == 0 {
		errs = append(errs, errors.New("-max-connections needs at least one value"))
	}
	if c.PrefetchFactor != 0 && c.PrefetchFactor < 1 {
		errs = append(errs, errors.New("-prefetch-factor must be 0 or at least 1"))
	}
	if c.FlakyRate < 0 || c.FlakyRate >= 1 {
		errs = append(errs, errors.New("-flaky-rate must be in [0, 1)"))
	}
	if c.FloodConns < 1 || c.FloodClients < 1 {
		errs = append(errs, errors.New("-flood-conns and -flood-clients must be positive"))
	}
	if c.MemSmall < 1 || c.MemLarge <= c.MemSmall {
		errs = append(errs, errors.New("-mem-large must exceed -mem-small, which must be positive"))
	}
	return errors.Join(errs...)
}

func (c Config) runs(phase int) bool {
	for _, p := range c.Phases {
		if p == phase {
			return true
		}
	}
	return false
}
