// Package config holds the ingress settings, read once from the environment
// at start-up.
package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/railco/relay/pkg/broker"
	pkgconfig "github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/logging"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/tlsconfig"
	"github.com/railco/relay/pkg/topology"
)

// Limits that Validate enforces.
const (
	// maxBodyLimit is RabbitMQ's default max_message_size (128 MiB): a larger
	// body could never be published, so a limit above it only defers the failure.
	maxBodyLimit = 128 << 20
	// maxChannels is RabbitMQ's default channel_max per connection (2047).
	maxChannels = 2047
)

// DefaultMaxConnections is INGRESS_MAX_CONNECTIONS's default, from
// measurement (docs/BENCHMARKS.md, phase 9): an open connection costs the
// ingress ~20 KiB (net/http's read and write buffers, a goroutine), so 1024
// of them add ~21 MiB to its ~18 MiB; a burst of 10,000 connections left it
// at 39 MiB and peaked at 51.5 MiB with clients running (2048: 57 / 82 MiB;
// no limit: 213 / 313 MiB). A slot is never kept by a connection idle for
// long while a new one needs it, so the limit needs no room for clients'
// idle pools.
const DefaultMaxConnections = 1024

// DefaultAPIKeysPollInterval is how often INGRESS_API_KEYS_FILE is checked
// for changes by default: a rotated key works within seconds, and reading
// and hashing a small file every 5s costs nothing.
const DefaultAPIKeysPollInterval = 5 * time.Second

// minPollInterval keeps a mistyped INGRESS_API_KEYS_POLL_INTERVAL ("5ms")
// from spinning on the file.
const minPollInterval = 100 * time.Millisecond

// Secret is a configuration value that must never be printed: it formats as
// "[redacted]" (or "" when empty), in logs, errors and %+v alike.
type Secret = pkgconfig.Secret

// Config is the ingress configuration. Load fills every field; Validate
// checks them.
type Config struct {
	Addr                string            // INGRESS_ADDR: where the HTTP server listens
	AddrFile            string            // INGRESS_ADDR_FILE: if set, the bound address is written there once listening
	AdminAddr           string            // INGRESS_ADMIN_ADDR: where /metrics (and the probes again) are served
	AdminAddrFile       string            // INGRESS_ADMIN_ADDR_FILE: as INGRESS_ADDR_FILE, for the admin address
	AdminToken          Secret            // INGRESS_ADMIN_TOKEN: if set, the admin address wants Authorization: Bearer <it>
	AdminTokenFile      string            // INGRESS_ADMIN_TOKEN_FILE: the token read from this file instead
	PProf               bool              // INGRESS_PPROF: on serves /debug/pprof/ on the admin address; off by default
	APIKeysFile         string            // INGRESS_API_KEYS_FILE: clients' "name:key" lines; unset: open to anyone
	APIKeysPollInterval time.Duration     // INGRESS_API_KEYS_POLL_INTERVAL: how often the keys file is checked for changes; 0: on SIGHUP only
	RateLimit           float64           // INGRESS_RATE_LIMIT: registrations per second per client; 0: no limit
	RateBurst           int               // INGRESS_RATE_BURST: registrations a client may send at once; 0: one second's worth
	AMQPURL             string            // AMQP_URL
	BrokerTLS           tlsconfig.Files   // AMQP_CA_FILE, AMQP_CLIENT_CERT_FILE, AMQP_CLIENT_KEY_FILE (amqps)
	PublishTimeout      time.Duration     // PUBLISH_TIMEOUT: how long a request waits for the broker's confirm
	EventsLinger        time.Duration     // INGRESS_EVENTS_LINGER: how long accepted events gather before one message takes them
	MaxBodyBytes        int               // MAX_BODY_BYTES: larger request bodies get 413
	PublisherChannels   int               // PUBLISHER_CHANNELS: confirm-mode channels per connection
	MaxConnections      int               // INGRESS_MAX_CONNECTIONS: open client connections at most; 0: no limit
	ReadTimeout         time.Duration     // INGRESS_READ_TIMEOUT: longest time to read one request, headers and body
	WriteTimeout        time.Duration     // INGRESS_WRITE_TIMEOUT: longest time from a request's headers to the end of its answer
	IdleTimeout         time.Duration     // INGRESS_IDLE_TIMEOUT: a keep-alive connection without a request is closed after this
	ShutdownTimeout     time.Duration     // SHUTDOWN_TIMEOUT: how long shutdown waits for in-flight requests
	RetryAfter          time.Duration     // RETRY_AFTER: told to clients in Retry-After on 503
	LogLevel            string            // LOG_LEVEL
	LogFormat           string            // LOG_FORMAT
	IndexPath           string            // INGRESS_INDEX_PATH: the registration index's file (EVENTS=on); default in the temporary directory
	IndexMaxAge         time.Duration     // INGRESS_INDEX_MAX_AGE: registrations that wait nowhere leave the index this long after their last event; default EVENTS_MAX_AGE; 0: never
	Topology            topology.Config   // EVENTS, EVENTS_MAX_AGE, EVENTS_MAX_BYTES among others
	Metrics             pkgmetrics.Config // QUEUE_METRICS_INTERVAL
}

// Load reads the configuration through getenv, using defaults for unset
// variables, and validates it. The error lists every problem found.
//
// The HTTP timeouts' defaults: a body is at most MAX_BODY_BYTES (64 KiB), so
// 10s to read a request is plenty and a slow sender holds its connection no
// longer; the write timeout is above that + PUBLISH_TIMEOUT (Validate) with
// 5s to write a small answer; and an idle keep-alive connection is closed
// after 30s (was 2m): it costs memory until then, 30s still spans the pauses
// of a client that sends steadily, and at INGRESS_MAX_CONNECTIONS idle
// connections are reclaimed at once anyway.
func Load(getenv func(string) string) (Config, error) {
	l := pkgconfig.NewLoader(getenv)
	cfg := Config{
		Addr:                l.String("INGRESS_ADDR", ":8290"),
		AddrFile:            l.String("INGRESS_ADDR_FILE", ""),
		AdminAddr:           l.String("INGRESS_ADMIN_ADDR", ":8292"),
		AdminAddrFile:       l.String("INGRESS_ADMIN_ADDR_FILE", ""),
		AdminToken:          Secret(l.String("INGRESS_ADMIN_TOKEN", "")),
		AdminTokenFile:      l.String("INGRESS_ADMIN_TOKEN_FILE", ""),
		PProf:               l.Switch("INGRESS_PPROF", false),
		APIKeysFile:         l.String("INGRESS_API_KEYS_FILE", ""),
		APIKeysPollInterval: l.Duration("INGRESS_API_KEYS_POLL_INTERVAL", DefaultAPIKeysPollInterval),
		RateLimit:           l.Float("INGRESS_RATE_LIMIT", 0),
		RateBurst:           l.Int("INGRESS_RATE_BURST", 0),
		AMQPURL:             l.String("AMQP_URL", "amqp://guest:guest@localhost:5672/"),
		BrokerTLS:           broker.LoadTLSFiles(l),
		PublishTimeout:      l.Duration("PUBLISH_TIMEOUT", 5*time.Second),
		EventsLinger:        l.Duration("INGRESS_EVENTS_LINGER", 100*time.Millisecond),
		MaxBodyBytes:        l.Int("MAX_BODY_BYTES", 64<<10),
		PublisherChannels:   l.Int("PUBLISHER_CHANNELS", 4),
		MaxConnections:      l.Int("INGRESS_MAX_CONNECTIONS", DefaultMaxConnections),
		ReadTimeout:         l.Duration("INGRESS_READ_TIMEOUT", 10*time.Second),
		WriteTimeout:        l.Duration("INGRESS_WRITE_TIMEOUT", 20*time.Second),
		IdleTimeout:         l.Duration("INGRESS_IDLE_TIMEOUT", 30*time.Second),
		ShutdownTimeout:     l.Duration("SHUTDOWN_TIMEOUT", 15*time.Second),
		RetryAfter:          l.Duration("RETRY_AFTER", 5*time.Second),
		LogLevel:            l.String("LOG_LEVEL", "info"),
		LogFormat:           l.String("LOG_FORMAT", "json"),
		Topology:            topology.LoadConfig(l),
		Metrics:             pkgmetrics.LoadConfig(l),
	}
	cfg.IndexPath = l.String("INGRESS_INDEX_PATH", DefaultIndexPath(cfg.Topology.Prefix))
	// The stream's retention as this service was told it: a policy that
	// changed the running stream's max-age is not seen here (README).
	cfg.IndexMaxAge = l.Duration("INGRESS_INDEX_MAX_AGE", cfg.Topology.EventsMaxAge)
	if cfg.RateBurst == 0 && cfg.RateLimit > 0 && !math.IsInf(cfg.RateLimit, 0) {
		cfg.RateBurst = int(math.Min(math.Ceil(cfg.RateLimit), math.MaxInt32)) // one second's worth
	}
	if err := l.Err(); err != nil {
		// Report unparseable values together with the range problems of the rest.
		return cfg, errors.Join(err, cfg.Validate())
	}
	return cfg, cfg.Validate()
}

// DefaultIndexPath is INGRESS_INDEX_PATH's default: a file per topology
// prefix in the temporary directory. Losing it costs a rebuild from the
// event stream, nothing else; give it a volume to spare the rebuild.
func DefaultIndexPath(prefix string) string {
	return filepath.Join(os.TempDir(), "relay-ingress-index."+prefix+".db")
}

// AdminBearer returns the token the admin address wants: INGRESS_ADMIN_TOKEN,
// or the content of INGRESS_ADMIN_TOKEN_FILE (surrounding white space
// trimmed); "" for none. The error never holds the token.
func (c Config) AdminBearer() (string, error) {
	if c.AdminTokenFile == "" {
		return string(c.AdminToken), nil
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("INGRESS_ADMIN_TOKEN_FILE: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if err := checkToken(token); err != nil {
		return "", fmt.Errorf("INGRESS_ADMIN_TOKEN_FILE %s: the token %w", c.AdminTokenFile, err)
	}
	return token, nil
}

// MinAdminToken is the shortest admin token accepted (as the forwarder's
// FORWARDER_ADMIN_TOKEN): `openssl rand -hex 24` makes one of 48.
const MinAdminToken = 16

// checkToken accepts a token a client can send in one header line, long
// enough not to be guessed.
func checkToken(token string) error {
	if token == "" {
		return errors.New("is empty")
	}
	for i := range len(token) {
		if token[i] <= ' ' || token[i] > '~' {
			return errors.New("must be printable ASCII without spaces")
		}
	}
	if len(token) < MinAdminToken {
		return fmt.Errorf("must be at least %d characters long", MinAdminToken)
	}
	return nil
}

// Validate reports every setting the ingress cannot run with, joined.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("INGRESS_ADDR %q: want host:port, e.g. \":8290\"", c.Addr))
	}
	if _, port, err := net.SplitHostPort(c.AdminAddr); err != nil {
		errs = append(errs, fmt.Errorf("INGRESS_ADMIN_ADDR %q: want host:port, e.g. \":8292\"", c.AdminAddr))
	} else if c.AdminAddr == c.Addr && port != "0" {
		errs = append(errs, errors.New("INGRESS_ADMIN_ADDR must differ from INGRESS_ADDR: the metrics stay off the public port"))
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		errs = append(errs, errors.New("set INGRESS_ADMIN_TOKEN or INGRESS_ADMIN_TOKEN_FILE, not both"))
	} else if err := checkToken(string(c.AdminToken)); c.AdminToken != "" && err != nil {
		errs = append(errs, fmt.Errorf("INGRESS_ADMIN_TOKEN %w", err))
	}
	if c.APIKeysPollInterval != 0 && c.APIKeysPollInterval < minPollInterval {
		errs = append(errs, fmt.Errorf("INGRESS_API_KEYS_POLL_INTERVAL must be 0 (on SIGHUP only) or at least %s", minPollInterval))
	}
	if !(c.RateLimit >= 0) || math.IsInf(c.RateLimit, 0) {
		errs = append(errs, errors.New("INGRESS_RATE_LIMIT must be 0 (no limit) or a positive number of requests per second"))
	}
	if c.RateBurst < 0 {
		errs = append(errs, errors.New("INGRESS_RATE_BURST must be 0 (one second's worth) or more"))
	}
	if _, err := broker.ParseURLs(c.AMQPURL); err != nil {
		errs = append(errs, fmt.Errorf("AMQP_URL: %w", err)) // names the URL without its password
	}
	if err := broker.CheckTLS(c.AMQPURL, c.BrokerTLS); err != nil {
		errs = append(errs, err)
	}
	if c.EventsLinger < 0 || c.EventsLinger > time.Second {
		errs = append(errs, errors.New("INGRESS_EVENTS_LINGER must be between 0 and 1s"))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("PUBLISH_TIMEOUT must be positive"))
	}
	if c.MaxBodyBytes < 1 || c.MaxBodyBytes > maxBodyLimit {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES must be between 1 and %d", maxBodyLimit))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, errors.New("INGRESS_MAX_CONNECTIONS must be 0 (no limit) or more"))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, errors.New("INGRESS_READ_TIMEOUT must be positive"))
	}
	// http.Server starts the write deadline once a request's headers are
	// read; the handler then reads the body (within INGRESS_READ_TIMEOUT)
	// and waits up to PUBLISH_TIMEOUT for the confirm before it answers. A
	// shorter write timeout would cut off answers to registrations that were
	// stored, and the client would retry them.
	if c.WriteTimeout <= c.ReadTimeout+c.PublishTimeout {
		errs = append(errs, errors.New("INGRESS_WRITE_TIMEOUT must be above INGRESS_READ_TIMEOUT + PUBLISH_TIMEOUT"))
	}
	if c.IdleTimeout < time.Second {
		errs = append(errs, errors.New("INGRESS_IDLE_TIMEOUT must be at least 1s"))
	}
	if c.PublisherChannels < 1 || c.PublisherChannels > maxChannels {
		errs = append(errs, fmt.Errorf("PUBLISHER_CHANNELS must be between 1 and %d", maxChannels))
	}
	// A request may wait PUBLISH_TIMEOUT for its confirm; shutdown must outlast
	// it or it would close the connection under confirms still on their way.
	if c.ShutdownTimeout <= c.PublishTimeout {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must be above PUBLISH_TIMEOUT"))
	}
	// Retry-After is a whole number of seconds.
	if c.RetryAfter < time.Second || c.RetryAfter%time.Second != 0 {
		errs = append(errs, errors.New("RETRY_AFTER must be a whole number of seconds, at least 1s"))
	}
	// Checked one at a time so that two bad values give two messages.
	if _, err := logging.New(io.Discard, c.LogLevel, "json"); err != nil {
		errs = append(errs, err)
	}
	if _, err := logging.New(io.Discard, "info", c.LogFormat); err != nil {
		errs = append(errs, err)
	}
	if c.IndexMaxAge < 0 {
		errs = append(errs, errors.New("INGRESS_INDEX_MAX_AGE must not be negative (0: never trim the index)"))
	}
	if c.Topology.Events && c.IndexPath == "" {
		errs = append(errs, errors.New("INGRESS_INDEX_PATH must not be empty with EVENTS=on"))
	}
	if err := c.Topology.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Metrics.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
