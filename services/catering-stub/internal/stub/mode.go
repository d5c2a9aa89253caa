package stub

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/railco/relay/services/catering-stub/internal/config"
)

// Mode is the failure behaviour applied to every POST /catering. The checks
// run in this order: Down, Latency, ForceStatus, FailureRate.
type Mode struct {
	// Down drops the connection without any response, as a crashed or
	// unreachable backend would.
	Down bool
	// ForceStatus, when non-zero, is the status of every answer. A 2xx status
	// still counts as a successful delivery and is recorded.
	ForceStatus int
	// FailureRate is the probability, 0..1, of answering FailureStatus.
	FailureRate float64
	// FailureStatus is the status of a random failure.
	FailureStatus int
	// Latency is waited before answering (not before dropping: an outage is
	// simulated as fast as the real one would be noticed).
	Latency time.Duration
}

// ModeFromConfig returns the start-up Mode described by cfg.
func ModeFromConfig(cfg config.Config) Mode {
	return Mode{
		Down:          cfg.Down,
		ForceStatus:   cfg.ForceStatus,
		FailureRate:   cfg.FailureRate,
		FailureStatus: cfg.FailureStatus,
		Latency:       cfg.Latency,
	}
}

// Validate reports every field that is out of range.
func (m Mode) Validate() error {
	var errs []error
	if !(m.FailureRate >= 0 && m.FailureRate <= 1) { // written so NaN fails too
		errs = append(errs, fmt.Errorf("failureRate %v: want a probability between 0 and 1", m.FailureRate))
	}
	if !config.IsFinalStatus(m.FailureStatus) {
		errs = append(errs, fmt.Errorf("failureStatus %d: want an HTTP status 200..599", m.FailureStatus))
	}
	if m.ForceStatus != 0 && !config.IsFinalStatus(m.ForceStatus) {
		errs = append(errs, fmt.Errorf("forceStatus %d: want 0 (off) or an HTTP status 200..599", m.ForceStatus))
	}
	if m.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v: must not be negative", m.Latency))
	}
	return errors.Join(errs...)
}

// modeJSON is Mode on the wire; latency is a Go duration string ("20ms")
// because nanosecond integers are unreadable in a demo.
type modeJSON struct {
	Down          bool    `json:"down"`
	ForceStatus   int     `json:"forceStatus"`
	FailureRate   float64 `json:"failureRate"`
	FailureStatus int     `json:"failureStatus"`
	Latency       string  `json:"latency"`
}

// MarshalJSON writes the Mode as GET /admin/mode shows it.
func (m Mode) MarshalJSON() ([]byte, error) {
	return json.Marshal(modeJSON{
		Down:          m.Down,
		ForceStatus:   m.ForceStatus,
		FailureRate:   m.FailureRate,
		FailureStatus: m.FailureStatus,
		Latency:       m.Latency.String(),
	})
}

// LogValue shows the Mode as a group of the same fields the API uses, in
// text and JSON logs alike.
func (m Mode) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("down", m.Down),
		slog.Int("forceStatus", m.ForceStatus),
		slog.Float64("failureRate", m.FailureRate),
		slog.Int("failureStatus", m.FailureStatus),
		slog.String("latency", m.Latency.String()),
	)
}

// ModePatch is the body of PUT /admin/mode. Nil fields leave the current
// value alone, so a test can flip Down without knowing the rest.
type ModePatch struct {
	Down          *bool    `json:"down"`
	ForceStatus   *int     `json:"forceStatus"`
	FailureRate   *float64 `json:"failureRate"`
	FailureStatus *int     `json:"failureStatus"`
	Latency       *string  `json:"latency"`
}

// Apply returns m with the patch's fields replaced, or an error if a field
// does not parse or the result is invalid; m itself is never changed.
func (p ModePatch) Apply(m Mode) (Mode, error) {
	if p.Down != nil {
		m.Down = *p.Down
	}
	if p.ForceStatus != nil {
		m.ForceStatus = *p.ForceStatus
	}
	if p.FailureRate != nil {
		m.FailureRate = *p.FailureRate
	}
	if p.FailureStatus != nil {
		m.FailureStatus = *p.FailureStatus
	}
	if p.Latency != nil {
		d, err := time.ParseDuration(*p.Latency)
		if err != nil {
			return Mode{}, fmt.Errorf("latency %q: not a duration (use e.g. \"20ms\", \"1s\")", *p.Latency)
		}
		m.Latency = d
	}
	if err := m.Validate(); err != nil {
		return Mode{}, err
	}
	return m, nil
}
