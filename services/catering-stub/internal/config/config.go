// Package config holds the catering stub's typed settings, read once from the
// environment at start-up.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	pkgconfig "github.com/railco/relay/pkg/config"
	"github.com/railco/relay/services/catering-stub/internal/webhook"
)

// Defaults for every setting; they make `make run` work with no environment.
const (
	DefaultAddr          = ":8080"
	DefaultFailureStatus = 500
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "json"
)

// Config is the stub's whole configuration. The zero value is not usable;
// start from Default or Load.
type Config struct {
	// Addr is the listen address (STUB_ADDR); port 0 picks a free port.
	Addr string
	// AddrFile, when set (STUB_ADDR_FILE), receives the bound address once the
	// stub is listening, so a test that started the binary with port 0 can find it.
	AddrFile string
	// FailureRate is the probability, 0..1, that a /catering request is
	// answered with FailureStatus (STUB_FAILURE_RATE).
	FailureRate float64
	// FailureStatus is the status used for random failures (STUB_FAILURE_STATUS).
	FailureStatus int
	// Latency is added before every /catering answer (STUB_LATENCY).
	Latency time.Duration
	// ForceStatus, when non-zero, is the status of every /catering answer
	// (STUB_FORCE_STATUS).
	ForceStatus int
	// Down makes the stub drop every /catering connection without a response
	// (STUB_DOWN), simulating an outage.
	Down bool
	// Quiet turns off the per-request log line (STUB_QUIET); benchmarks need it.
	Quiet bool
	// SigningSecret, when set (STUB_SIGNING_SECRET: one or more "whsec_…",
	// space-separated), makes the stub verify every /catering request's
	// Standard Webhooks signature and answer 401 to a missing, wrong or
	// stale one. Unset: nothing is checked.
	SigningSecret Secret
	// LogLevel is debug, info, warn or error (LOG_LEVEL).
	LogLevel string
	// LogFormat is json or text (LOG_FORMAT).
	LogFormat string
}

// Default returns the configuration used when no variable is set.
func Default() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	c.Addr = DefaultAddr
	c.FailureStatus = DefaultFailureStatus
	c.LogLevel = DefaultLogLevel
	c.LogFormat = DefaultLogFormat
}

// Load reads the configuration through getenv, applies defaults for unset
// variables and validates the result. Every problem is reported, not just the first.
func Load(getenv pkgconfig.Getenv) (Config, error) {
	d := Default()
	l := pkgconfig.NewLoader(getenv)
	c := Config{
		Addr:          l.String("STUB_ADDR", d.Addr),
		AddrFile:      l.String("STUB_ADDR_FILE", d.AddrFile),
		FailureRate:   l.Float("STUB_FAILURE_RATE", d.FailureRate),
		FailureStatus: l.Int("STUB_FAILURE_STATUS", d.FailureStatus),
		Latency:       l.Duration("STUB_LATENCY", d.Latency),
		ForceStatus:   l.Int("STUB_FORCE_STATUS", d.ForceStatus),
		Down:          l.Bool("STUB_DOWN", d.Down),
		Quiet:         l.Bool("STUB_QUIET", d.Quiet),
		SigningSecret: Secret(l.String("STUB_SIGNING_SECRET", string(d.SigningSecret))),
		LogLevel:      l.String("LOG_LEVEL", d.LogLevel),
		LogFormat:     l.String("LOG_FORMAT", d.LogFormat),
	}
	// A variable that did not parse left its (valid) default behind, so
	// validating anyway adds only the other variables' problems.
	if err := errors.Join(l.Err(), c.Validate()); err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	return c, nil
}

// Validate reports every setting that is out of range, joined into one error.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Addr) == "" {
		errs = append(errs, errors.New("STUB_ADDR: must not be empty"))
	}
	// The comparison is written this way round so NaN fails it too.
	if !(c.FailureRate >= 0 && c.FailureRate <= 1) {
		errs = append(errs, fmt.Errorf("STUB_FAILURE_RATE %v: want a probability between 0 and 1", c.FailureRate))
	}
	if !IsFinalStatus(c.FailureStatus) {
		errs = append(errs, fmt.Errorf("STUB_FAILURE_STATUS %d: want an HTTP status 200..599", c.FailureStatus))
	}
	if c.ForceStatus != 0 && !IsFinalStatus(c.ForceStatus) {
		errs = append(errs, fmt.Errorf("STUB_FORCE_STATUS %d: want 0 (off) or an HTTP status 200..599", c.ForceStatus))
	}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("STUB_LATENCY %v: must not be negative", c.Latency))
	}
	if _, err := webhook.NewVerifier(string(c.SigningSecret)); err != nil {
		errs = append(errs, fmt.Errorf("STUB_SIGNING_SECRET: %w", err))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel))
	}
	switch strings.ToLower(c.LogFormat) {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT %q: want json or text", c.LogFormat))
	}
	return errors.Join(errs...)
}

// Secret is a setting that must never be shown: printed or logged it says
// only whether it is set.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from showing it.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps slog from showing it.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (and slog's JSON of a whole Config) from showing it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// IsFinalStatus reports whether code can end an HTTP exchange. 1xx codes are
// excluded because net/http sends them as interim responses and then goes on
// waiting for the real one, which would not simulate anything useful.
func IsFinalStatus(code int) bool { return code >= 200 && code <= 599 }
