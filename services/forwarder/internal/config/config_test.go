package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/services/forwarder/internal/config"
)

func load(env map[string]string) (config.Config, error) {
	return config.Load(func(k string) string { return env[k] })
}

func TestLoad_Defaults(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 16 || c.Prefetch != 32 || c.DeliveryTimeout != 10*time.Second || c.AdminAddr != ":8291" ||
		c.Topology.MaxAttempts != 4 || c.Topology.RetryInitial != time.Second || c.Topology.RetryMultiplier != 5 ||
		c.Topology.RetryMax != 10*time.Minute || c.Metrics.QueueInterval != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	for _, code := range []int{400, 401, 403, 404, 405, 409, 410, 413, 415, 422} {
		if !c.NonRetryable[code] {
			t.Errorf("%d not in the default NON_RETRY_STATUS_CODES", code)
		}
	}
	if len(c.NonRetryable) != 10 {
		t.Errorf("default non-retryable set has %d codes, want 10", len(c.NonRetryable))
	}
}

func TestLoad_Overrides(t *testing.T) {
	c, err := load(map[string]string{"FORWARDER_CONCURRENCY": "64", "NON_RETRY_STATUS_CODES": "400,422", "CATERING_SERVICE_EP": "https://example.com/c"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 64 || c.Prefetch != 128 || len(c.NonRetryable) != 2 || c.Endpoint != "https://example.com/c" {
		t.Errorf("overrides: %+v", c)
	}
}

func TestLoad_Invalid(t *testing.T) {
	tests := map[string]map[string]string{
		"NON_RETRY_STATUS_CODES: 302": {"NON_RETRY_STATUS_CODES": "422,302"},
		"NON_RETRY_STATUS_CODES: 101": {"NON_RETRY_STATUS_CODES": "101"},
		"CATERING_SERVICE_EP":         {"CATERING_SERVICE_EP": "www.urldoesnotexist.com"},
		"FORWARDER_CONCURRENCY":       {"FORWARDER_CONCURRENCY": "0"},
		"FORWARDER_PREFETCH":          {"FORWARDER_PREFETCH": "1"},
		"DELIVERY_TIMEOUT":            {"DELIVERY_TIMEOUT": "10"},
		"NON_RETRY_STATUS_CODES":      {"NON_RETRY_STATUS_CODES": "200"},
		"MAX_DELIVERY_ATTEMPTS":       {"MAX_DELIVERY_ATTEMPTS": "0"},
		"BREAKER_MIN_MESSAGES":        {"BREAKER_MIN_MESSAGES": "30"},
		"BREAKER_FAILURE_RATE":        {"BREAKER_FAILURE_RATE": "1.5"},
		"BREAKER_HOLD_MAX":            {"BREAKER_HOLD_MAX": "45m"},
		"BREAKER_HOLD_MAX ×":          {"BREAKER_HOLD_MAX": "12m", "FORWARDER_CONCURRENCY": "4", "FORWARDER_PREFETCH": "12"},
		"QUEUE_METRICS_INTERVAL":      {"QUEUE_METRICS_INTERVAL": "100ms"},
	}
	for name, env := range tests {
		if _, err := load(env); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming it", name, err)
		}
	}
}

func TestLoad_ScheduledRedrive(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedriveInterval != 0 || c.RedriveMax != 3 {
		t.Errorf("defaults: interval %s (want 0: off), max %d (want 3)", c.RedriveInterval, c.RedriveMax)
	}
	c, err = load(map[string]string{"DEAD_LETTER_REDRIVE_INTERVAL": "15m", "DEAD_LETTER_REDRIVE_MAX": "5"})
	if err != nil || c.RedriveInterval != 15*time.Minute || c.RedriveMax != 5 {
		t.Errorf("overrides: %s %d %v", c.RedriveInterval, c.RedriveMax, err)
	}
	for name, env := range map[string]map[string]string{
		"DEAD_LETTER_REDRIVE_INTERVAL": {"DEAD_LETTER_REDRIVE_INTERVAL": "100ms"},
		"DEAD_LETTER_REDRIVE_MAX":      {"DEAD_LETTER_REDRIVE_MAX": "0"},
	} {
		if _, err := load(env); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming it", name, err)
		}
	}
	if _, err := load(map[string]string{"DEAD_LETTER_REDRIVE_INTERVAL": "-1m"}); err == nil {
		t.Error("a negative interval passed validation")
	}
}
