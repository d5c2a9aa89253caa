package config

import "log/slog"

// Secret is a setting that must never be shown: a token, a key. Printing it
// with fmt (%v, %s, %#v), slog or an encoder (JSON, text) gives "[redacted]",
// or "" when it is unset; string(s) is the only way to its value.
type Secret string

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from showing it.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue keeps slog from showing it.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (encoding/json among them) from showing it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
