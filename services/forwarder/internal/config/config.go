// Package config loads the forwarder's settings from the environment.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokeradmin"
	"github.com/railco/relay/pkg/config"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/tlsconfig"
	"github.com/railco/relay/pkg/topology"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/signing"
)

// Config is everything the forwarder reads from its environment, loaded once.
type Config struct {
	AMQPURL           string
	BrokerTLS         tlsconfig.Files // AMQP_CA_FILE, AMQP_CLIENT_CERT_FILE, AMQP_CLIENT_KEY_FILE (amqps)
	ManagementURL     string          // RABBITMQ_MANAGEMENT_URL: "" derives it from AMQP_URL, "off" turns it off
	Endpoint          string          // CATERING_SERVICE_EP; may hold a password: show it through RedactURL
	BackendTLS        tlsconfig.Files // CATERING_CA_FILE, CATERING_CLIENT_CERT_FILE, CATERING_CLIENT_KEY_FILE (https)
	SigningSecret     Secret          // CATERING_SIGNING_SECRET: "whsec_…" secrets, space-separated; empty: unsigned
	Concurrency       int
	Prefetch          int
	DeliveryTimeout   time.Duration
	NonRetryable      map[int]bool
	PublishTimeout    time.Duration
	PublisherChannels int
	AdminAddr         string
	AdminToken        Secret // FORWARDER_ADMIN_TOKEN or the content of FORWARDER_ADMIN_TOKEN_FILE; empty: open
	PProf             bool   // FORWARDER_PPROF: on serves /debug/pprof/ on the admin address; off by default
	Breaker           breaker.Options
	HoldMax           time.Duration
	// EventsLinger is how long a delivery's events gather with others'
	// before one message takes them (FORWARDER_EVENTS_LINGER; by default
	// none: the events that come while a message awaits its confirm make
	// the next). Its ack waits for them, holding a prefetch slot.
	EventsLinger time.Duration
	LogLevel     string
	LogFormat    string
	Topology     topology.Config
	Metrics      pkgmetrics.Config
	// Scheduled redrive of max-attempts dead letters; see package redrive.
	RedriveInterval time.Duration // DEAD_LETTER_REDRIVE_INTERVAL; 0 turns it off
	RedriveMax      int           // DEAD_LETTER_REDRIVE_MAX: redrives per letter
}

// consumerTimeout is RabbitMQ's default consumer_timeout: a delivery unacked
// for longer makes the broker close the channel.
const consumerTimeout = 30 * time.Minute

// holdSlack covers the longest pause between uncounted attempts
// (forwarder.uncountedPauseMax) and scheduling.
const holdSlack = 5 * time.Second

// defaultHoldMax is BREAKER_HOLD_MAX's default: 10 minutes, or less, in
// whole minutes, when the prefetch's rounds of holds would otherwise not
// fit RabbitMQ's consumer_timeout (see Validate): 7 minutes at four
// messages per worker, 3 at eight (the default with events on).
func (c Config) defaultHoldMax() time.Duration {
	return max(min(10*time.Minute, c.holdBudget().Truncate(time.Minute)), time.Minute)
}

// holdBudget is the longest hold that lets ⌈prefetch/concurrency⌉ rounds
// of holds fit consumer_timeout.
func (c Config) holdBudget() time.Duration {
	rounds := (c.Prefetch + c.Concurrency - 1) / max(c.Concurrency, 1)
	return consumerTimeout/time.Duration(max(rounds, 1)) - c.DeliveryTimeout - c.PublishTimeout - holdSlack - time.Second
}

// withPrefetch returns c with prefetch n.
func (c Config) withPrefetch(n int) Config {
	c.Prefetch = n
	return c
}

// DefaultNonRetryable are the statuses that mean "this request will never
// succeed as it is": retrying them only delays the dead letter. 401 and 403
// are not among them and cannot be: they say the backend refused relay's
// credentials, a configuration problem that pauses delivery
// (forwarder.Policy), not a verdict on the message.
var DefaultNonRetryable = []int{400, 404, 405, 409, 410, 413, 415, 422}

// MinAdminToken is the shortest FORWARDER_ADMIN_TOKEN accepted.
const MinAdminToken = 16

// Secret is a setting that must never be shown: printed, logged or
// marshalled it says only whether it is set.
type Secret = config.Secret

// RedactURL returns raw without its password, for logs and errors. A value
// that does not parse as a URL is not shown if it could hold one.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		return u.Redacted()
	}
	if strings.Contains(raw, "@") {
		return "(not shown: unparseable, and it may hold a password)"
	}
	return raw
}

// Load reads the configuration through getenv and validates it.
func Load(getenv config.Getenv) (Config, error) {
	l := config.NewLoader(getenv)
	c := Config{
		AMQPURL:           l.String("AMQP_URL", "amqp://guest:guest@localhost:5672/"),
		BrokerTLS:         broker.LoadTLSFiles(l),
		ManagementURL:     l.String("RABBITMQ_MANAGEMENT_URL", ""),
		Endpoint:          l.String("CATERING_SERVICE_EP", "http://localhost:8280/catering"),
		BackendTLS:        loadBackendTLS(l),
		SigningSecret:     Secret(l.String("CATERING_SIGNING_SECRET", "")),
		DeliveryTimeout:   l.Duration("DELIVERY_TIMEOUT", 10*time.Second),
		NonRetryable:      l.IntSet("NON_RETRY_STATUS_CODES", DefaultNonRetryable),
		PublishTimeout:    l.Duration("PUBLISH_TIMEOUT", 5*time.Second),
		PublisherChannels: l.Int("PUBLISHER_CHANNELS", 2),
		AdminAddr:         l.String("FORWARDER_ADMIN_ADDR", ":8291"),
		PProf:             l.Switch("FORWARDER_PPROF", false),
		Breaker: breaker.Options{
			Threshold:     l.Int("BREAKER_FAILURE_THRESHOLD", 5),
			Window:        l.Int("BREAKER_WINDOW", 20),
			FailureRate:   l.Float("BREAKER_FAILURE_RATE", 0.8),
			MinMessages:   l.Int("BREAKER_MIN_MESSAGES", 3),
			ProbeInterval: l.Duration("BREAKER_PROBE_INTERVAL", 5*time.Second),
			ProbeMax:      l.Duration("BREAKER_PROBE_MAX_INTERVAL", 10*time.Second),
		},
		LogLevel:  l.String("LOG_LEVEL", "info"),
		LogFormat: l.String("LOG_FORMAT", "json"),
		Topology:  topology.LoadConfig(l),
		Metrics:   pkgmetrics.LoadConfig(l),

		RedriveInterval: l.Duration("DEAD_LETTER_REDRIVE_INTERVAL", 0),
		RedriveMax:      l.Int("DEAD_LETTER_REDRIVE_MAX", 3),
	}
	// 32 workers: 16 delivered 10–13 % less under a steady closed-loop
	// load, with or without failures (docs/BENCHMARKS.md, "Event cost");
	// and with events on, a delivered message's ack waits for its events'
	// confirm, holding its prefetch slot meanwhile.
	c.Concurrency = l.Int("FORWARDER_CONCURRENCY", 32)
	// Two unacked messages per worker by default: a worker that finishes
	// finds its next message already here instead of waiting a round trip
	// for it (measured: +30% at 16 and 64 workers against a 20 ms backend).
	// With events on, eight: a delivered message's ack waits for its
	// events, which linger 20 ms to make few, large chunks of the stream,
	// and its prefetch slot is held meanwhile. Measured against EVENTS=off
	// (docs/BENCHMARKS.md, "Event cost"): 20 ms and eight slots per worker
	// cost −2 % accepted, +4 % delivered in steady operation; 10 ms and
	// four cost −10 % and −11 %. The price: BREAKER_HOLD_MAX's default is
	// 3 minutes instead of 10 (defaultHoldMax).
	perWorker, linger := 2, time.Duration(0)
	if c.Topology.Events {
		perWorker, linger = 8, 20*time.Millisecond
	}
	// Fewer when long timeouts leave eight rounds of holds no room within
	// consumer_timeout (a minute each at least): the default must start.
	for perWorker > 2 && c.withPrefetch(perWorker*c.Concurrency).holdBudget() < time.Minute {
		perWorker /= 2
	}
	c.Prefetch = l.Int("FORWARDER_PREFETCH", perWorker*c.Concurrency)
	c.EventsLinger = l.Duration("FORWARDER_EVENTS_LINGER", linger)
	c.HoldMax = l.Duration("BREAKER_HOLD_MAX", c.defaultHoldMax())
	token, tokenErr := adminToken(l.String("FORWARDER_ADMIN_TOKEN", ""), l.String("FORWARDER_ADMIN_TOKEN_FILE", ""))
	c.AdminToken = token
	if err := errors.Join(l.Err(), tokenErr); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// loadBackendTLS reads the files of the TLS towards the backend (with an
// https CATERING_SERVICE_EP).
func loadBackendTLS(l *config.Loader) tlsconfig.Files {
	return tlsconfig.Files{
		CA:   l.String("CATERING_CA_FILE", ""),
		Cert: l.String("CATERING_CLIENT_CERT_FILE", ""),
		Key:  l.String("CATERING_CLIENT_KEY_FILE", ""),
	}
}

// adminToken is the token given inline or in a file (a mounted Kubernetes
// secret, say), without surrounding white space. Its errors never show it.
func adminToken(inline, file string) (Secret, error) {
	switch {
	case file == "":
		return Secret(inline), nil
	case inline != "":
		return "", errors.New("FORWARDER_ADMIN_TOKEN and FORWARDER_ADMIN_TOKEN_FILE: set one, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("FORWARDER_ADMIN_TOKEN_FILE: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("FORWARDER_ADMIN_TOKEN_FILE: %s is empty", file)
	}
	return Secret(token), nil
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	u, perr := url.Parse(c.Endpoint)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("CATERING_SERVICE_EP %q must be an http(s) URL", RedactURL(c.Endpoint)))
	}
	if err := c.BackendTLS.Validate("CATERING"); err != nil {
		errs = append(errs, err)
	}
	if c.BackendTLS.Set() && perr == nil && u.Scheme != "https" {
		// Else the CA would never be asked and the client certificate never sent.
		errs = append(errs, errors.New("CATERING_CA_FILE, CATERING_CLIENT_CERT_FILE, CATERING_CLIENT_KEY_FILE need an https CATERING_SERVICE_EP"))
	}
	if _, err := signing.New(string(c.SigningSecret)); err != nil {
		errs = append(errs, fmt.Errorf("CATERING_SIGNING_SECRET: %w", err))
	}
	if t := string(c.AdminToken); t != "" && (len(t) < MinAdminToken || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
		errs = append(errs, fmt.Errorf("FORWARDER_ADMIN_TOKEN, FORWARDER_ADMIN_TOKEN_FILE: want a token of at least %d characters, without spaces or control characters", MinAdminToken))
	}
	if _, err := broker.ParseURLs(c.AMQPURL); err != nil {
		errs = append(errs, fmt.Errorf("AMQP_URL: %w", err)) // names the URL without its password
	} else if _, err := brokeradmin.New(c.AMQPURL, c.ManagementURL); err != nil && !errors.Is(err, brokeradmin.ErrOff) {
		errs = append(errs, fmt.Errorf("AMQP_URL, RABBITMQ_MANAGEMENT_URL: %w", err))
	}
	if err := broker.CheckTLS(c.AMQPURL, c.BrokerTLS); err != nil {
		errs = append(errs, err)
	}
	if c.Concurrency < 1 || c.Concurrency > 4096 {
		errs = append(errs, errors.New("FORWARDER_CONCURRENCY must be between 1 and 4096"))
	}
	if c.Prefetch < c.Concurrency || c.Prefetch > 65535 {
		errs = append(errs, errors.New("FORWARDER_PREFETCH must be at least FORWARDER_CONCURRENCY and at most 65535"))
	}
	if c.DeliveryTimeout <= 0 {
		errs = append(errs, errors.New("DELIVERY_TIMEOUT must be positive"))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("PUBLISH_TIMEOUT must be positive"))
	}
	if c.PublisherChannels < 1 {
		errs = append(errs, errors.New("PUBLISHER_CHANNELS must be at least 1"))
	}
	for code := range c.NonRetryable {
		// 1xx and 3xx answers mean a misconfigured backend, which pauses
		// delivery like an outage (forwarder.Policy); they never dead-letter.
		switch {
		case code < 400 || code > 599:
			errs = append(errs, fmt.Errorf("NON_RETRY_STATUS_CODES: %d is not a 4xx or 5xx status", code))
		case code == 401 || code == 403:
			// The backend refusing relay's credentials says nothing about
			// the message: dead-lettering would empty the queue into the
			// dead letters over a wrong secret or certificate.
			errs = append(errs, fmt.Errorf("NON_RETRY_STATUS_CODES: %d cannot be non-retryable: it means the backend refused relay's credentials (CATERING_SIGNING_SECRET, client certificate, password), which pauses delivery instead of dead-lettering", code))
		}
	}
	if c.Breaker.Threshold < 1 {
		errs = append(errs, errors.New("BREAKER_FAILURE_THRESHOLD must be at least 1"))
	}
	if c.Breaker.Window < 1 {
		errs = append(errs, errors.New("BREAKER_WINDOW must be at least 1"))
	}
	if c.Breaker.FailureRate < 0 || c.Breaker.FailureRate > 1 {
		errs = append(errs, errors.New("BREAKER_FAILURE_RATE must be between 0 (off) and 1"))
	}
	if c.Breaker.MinMessages < 1 || c.Breaker.MinMessages > c.Breaker.Window {
		errs = append(errs, errors.New("BREAKER_MIN_MESSAGES must be between 1 and BREAKER_WINDOW"))
	}
	if c.Breaker.ProbeInterval <= 0 || c.Breaker.ProbeMax < c.Breaker.ProbeInterval {
		errs = append(errs, errors.New("BREAKER_PROBE_INTERVAL must be positive and at most BREAKER_PROBE_MAX_INTERVAL"))
	}
	// While the breaker holds every worker, a message can wait unowned in
	// the client's buffer for each round of holds before a worker takes it
	// and holds it too: all of that must end before RabbitMQ's default
	// consumer_timeout of 30m closes the channel. A hold may overrun
	// BREAKER_HOLD_MAX by the attempt under way, a pause between uncounted
	// attempts and the give-back's publish.
	hold := c.HoldMax + c.DeliveryTimeout + c.PublishTimeout + holdSlack
	if rounds := (c.Prefetch + c.Concurrency - 1) / max(c.Concurrency, 1); c.HoldMax <= 0 || time.Duration(rounds)*hold >= consumerTimeout {
		errs = append(errs, fmt.Errorf("BREAKER_HOLD_MAX × ⌈FORWARDER_PREFETCH / FORWARDER_CONCURRENCY⌉ (each hold plus DELIVERY_TIMEOUT, PUBLISH_TIMEOUT and %s) must be positive and below RabbitMQ's default consumer_timeout of %s", holdSlack, consumerTimeout))
	}
	if c.RedriveInterval != 0 && c.RedriveInterval < time.Second {
		// Each round browses the whole dead-letter queue.
		errs = append(errs, errors.New("DEAD_LETTER_REDRIVE_INTERVAL must be 0 (off) or at least 1s"))
	}
	if c.EventsLinger < 0 || c.EventsLinger > 100*time.Millisecond {
		errs = append(errs, errors.New("FORWARDER_EVENTS_LINGER must be between 0 and 100ms"))
	}
	if c.RedriveMax < 1 {
		errs = append(errs, errors.New("DEAD_LETTER_REDRIVE_MAX must be at least 1"))
	}
	if err := c.Topology.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Metrics.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
