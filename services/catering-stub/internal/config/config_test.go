package config_test

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/services/catering-stub/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad_DefaultsWhenNothingIsSet(t *testing.T) {
	got, err := config.Load(env(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		Addr:          ":8080",
		FailureStatus: 500,
		LogLevel:      "info",
		LogFormat:     "json",
	}
	if got != want {
		t.Fatalf("Load() = %+v, want %+v", got, want)
	}
	if got != config.Default() {
		t.Fatalf("Load() = %+v, differs from Default() = %+v", got, config.Default())
	}
}

func TestLoad_ReadsEveryVariable(t *testing.T) {
	got, err := config.Load(env(map[string]string{
		"STUB_ADDR":           "127.0.0.1:0",
		"STUB_ADDR_FILE":      "/tmp/stub.addr",
		"STUB_FAILURE_RATE":   "0.25",
		"STUB_FAILURE_STATUS": "503",
		"STUB_LATENCY":        "20ms",
		"STUB_FORCE_STATUS":   "429",
		"STUB_DOWN":           "true",
		"STUB_QUIET":          "1",
		"STUB_SIGNING_SECRET": signingSecret,
		"LOG_LEVEL":           "debug",
		"LOG_FORMAT":          "text",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		Addr:          "127.0.0.1:0",
		AddrFile:      "/tmp/stub.addr",
		FailureRate:   0.25,
		FailureStatus: 503,
		Latency:       20 * time.Millisecond,
		ForceStatus:   429,
		Down:          true,
		Quiet:         true,
		SigningSecret: signingSecret,
		LogLevel:      "debug",
		LogFormat:     "text",
	}
	if got != want {
		t.Fatalf("Load() = %+v, want %+v", got, want)
	}
}

func TestLoad_RejectsBadValues(t *testing.T) {
	tests := []struct {
		name, key, value string
	}{
		{"failure rate above one", "STUB_FAILURE_RATE", "1.5"},
		{"failure rate negative", "STUB_FAILURE_RATE", "-0.1"},
		{"failure rate not a number", "STUB_FAILURE_RATE", "often"},
		{"failure status informational", "STUB_FAILURE_STATUS", "100"},
		{"failure status out of range", "STUB_FAILURE_STATUS", "600"},
		{"force status out of range", "STUB_FORCE_STATUS", "42"},
		{"force status not a number", "STUB_FORCE_STATUS", "teapot"},
		{"latency negative", "STUB_LATENCY", "-1s"},
		{"latency without unit", "STUB_LATENCY", "20"},
		{"down not a bool", "STUB_DOWN", "maybe"},
		{"quiet not a bool", "STUB_QUIET", "shh"},
		{"unknown log level", "LOG_LEVEL", "loud"},
		{"unknown log format", "LOG_FORMAT", "xml"},
		{"signing secret without whsec_", "STUB_SIGNING_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"signing secret too short", "STUB_SIGNING_SECRET", "whsec_c2hvcnQ="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(map[string]string{tt.key: tt.value}))
			if err == nil {
				t.Fatalf("Load(%s=%q) succeeded, want an error", tt.key, tt.value)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("Load(%s=%q) error %q does not name the variable", tt.key, tt.value, err)
			}
			if strings.HasPrefix(tt.key, "STUB_SIGNING") && strings.Contains(err.Error(), strings.TrimPrefix(tt.value, "whsec_")) {
				t.Fatalf("error %q shows the secret", err)
			}
		})
	}
}

const signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestConfig_NeverShowsTheSigningSecret(t *testing.T) {
	c := config.Default()
	c.SigningSecret = signingSecret + " " + signingSecret
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	for _, shown := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logged.String()} {
		if strings.Contains(shown, "MfKQ9r8G") {
			t.Errorf("the secret shows: %s", shown)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("two valid secrets: %v", err)
	}
}

func TestLoad_ReportsEveryProblemAtOnce(t *testing.T) {
	_, err := config.Load(env(map[string]string{
		"STUB_FAILURE_RATE": "1.5",
		"STUB_LATENCY":      "soon",
		"LOG_FORMAT":        "xml",
	}))
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	for _, key := range []string{"STUB_FAILURE_RATE", "STUB_LATENCY", "LOG_FORMAT"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not mention %s", err, key)
		}
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*config.Config)
		wantErr bool
	}{
		{"defaults", func(*config.Config) {}, false},
		{"failure rate zero", func(c *config.Config) { c.FailureRate = 0 }, false},
		{"failure rate one", func(c *config.Config) { c.FailureRate = 1 }, false},
		{"failure rate 1.5", func(c *config.Config) { c.FailureRate = 1.5 }, true},
		{"failure rate NaN", func(c *config.Config) { c.FailureRate = math.NaN() }, true},
		{"force status 200", func(c *config.Config) { c.ForceStatus = 200 }, false},
		{"force status 599", func(c *config.Config) { c.ForceStatus = 599 }, false},
		{"force status 199", func(c *config.Config) { c.ForceStatus = 199 }, true},
		{"failure status zero", func(c *config.Config) { c.FailureStatus = 0 }, true},
		{"negative latency", func(c *config.Config) { c.Latency = -time.Millisecond }, true},
		{"empty addr", func(c *config.Config) { c.Addr = " " }, true},
		{"upper-case log level", func(c *config.Config) { c.LogLevel = "WARN" }, false},
		{"upper-case log format", func(c *config.Config) { c.LogFormat = "TEXT" }, false},
		{"empty log format", func(c *config.Config) { c.LogFormat = "" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.mutate(&c)
			err := c.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}
