package config_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	if c.Concurrency != 32 || c.Prefetch != 256 || c.DeliveryTimeout != 10*time.Second || c.AdminAddr != ":8291" || !c.Topology.Events ||
		c.Topology.MaxAttempts != 4 || c.Topology.RetryInitial != time.Second || c.Topology.RetryMultiplier != 5 ||
		c.Topology.RetryMax != 10*time.Minute || c.Metrics.QueueInterval != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	for _, code := range []int{400, 404, 405, 409, 410, 413, 415, 422} {
		if !c.NonRetryable[code] {
			t.Errorf("%d not in the default NON_RETRY_STATUS_CODES", code)
		}
	}
	if len(c.NonRetryable) != 8 {
		t.Errorf("default non-retryable set has %d codes, want 8", len(c.NonRetryable))
	}
	if c.SigningSecret != "" || c.AdminToken != "" || c.BackendTLS.Set() {
		t.Errorf("signing, admin token or backend TLS on by default: %+v", c)
	}
	if c.PProf {
		t.Error("FORWARDER_PPROF is on by default; profiles must be turned on by an operator")
	}
}

func TestLoad_EventsDefaults(t *testing.T) {
	c, err := load(map[string]string{}) // EVENTS is on by default
	if err != nil {
		t.Fatal(err)
	}
	// Acks wait for lingering events: eight messages per worker, and holds
	// short enough for eight rounds of them within consumer_timeout.
	if c.Concurrency != 32 || c.Prefetch != 256 || c.EventsLinger != 20*time.Millisecond || c.HoldMax != 3*time.Minute {
		t.Errorf("EVENTS=on: concurrency %d, prefetch %d, linger %s, hold %s; want 32, 256, 20ms, 3m", c.Concurrency, c.Prefetch, c.EventsLinger, c.HoldMax)
	}
	c, err = load(map[string]string{"EVENTS": "on", "FORWARDER_CONCURRENCY": "8", "FORWARDER_EVENTS_LINGER": "3ms", "BREAKER_HOLD_MAX": "2m"})
	if err != nil || c.Concurrency != 8 || c.Prefetch != 64 || c.EventsLinger != 3*time.Millisecond || c.HoldMax != 2*time.Minute {
		t.Errorf("EVENTS=on with settings: %+v (%v)", c, err)
	}
	// Long timeouts leave eight rounds of holds no room: fewer slots, so
	// that the defaults still start.
	if c, err := load(map[string]string{"DELIVERY_TIMEOUT": "3m"}); err != nil || c.Prefetch != 128 || c.HoldMax != 4*time.Minute {
		t.Errorf("DELIVERY_TIMEOUT=3m: prefetch %d, hold %s (%v); want 128 and 4m", c.Prefetch, c.HoldMax, err)
	}
	// The hold's default depends on the prefetch alone; off, two slots per
	// worker and no linger.
	if c, err := load(map[string]string{"EVENTS": "off"}); err != nil || c.Prefetch != 64 || c.EventsLinger != 0 || c.HoldMax != 10*time.Minute {
		t.Errorf("EVENTS=off: prefetch %d, linger %s, hold %s (%v); want 64, 0s, 10m", c.Prefetch, c.EventsLinger, c.HoldMax, err)
	}
	for prefetch, want := range map[string]time.Duration{"": 10 * time.Minute, "64": 10 * time.Minute, "128": 7 * time.Minute, "256": 3 * time.Minute} {
		env := map[string]string{"EVENTS": "off"}
		if prefetch != "" {
			env["FORWARDER_PREFETCH"] = prefetch
		}
		if c, err := load(env); err != nil || c.HoldMax != want {
			t.Errorf("FORWARDER_PREFETCH=%q: hold %s (%v), want %s", prefetch, c.HoldMax, err, want)
		}
	}
	if _, err := load(map[string]string{"FORWARDER_EVENTS_LINGER": "1s"}); err == nil || !strings.Contains(err.Error(), "FORWARDER_EVENTS_LINGER") {
		t.Errorf("FORWARDER_EVENTS_LINGER=1s: error %v, want one naming it", err)
	}
}

func TestLoad_PProf(t *testing.T) {
	for v, want := range map[string]bool{"on": true, "ON": true, "true": true, "off": false, "false": false} {
		c, err := load(map[string]string{"FORWARDER_PPROF": v})
		if err != nil || c.PProf != want {
			t.Errorf("FORWARDER_PPROF=%s: PProf %v (%v), want %v", v, c.PProf, err, want)
		}
	}
	if _, err := load(map[string]string{"FORWARDER_PPROF": "sometimes"}); err == nil || !strings.Contains(err.Error(), "FORWARDER_PPROF") {
		t.Errorf("FORWARDER_PPROF=sometimes: error %v, want one naming it", err)
	}
}

func TestLoad_Overrides(t *testing.T) {
	c, err := load(map[string]string{"FORWARDER_CONCURRENCY": "64", "NON_RETRY_STATUS_CODES": "400,422", "CATERING_SERVICE_EP": "https://example.com/c"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 64 || c.Prefetch != 512 || len(c.NonRetryable) != 2 || c.Endpoint != "https://example.com/c" {
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
		"NON_RETRY_STATUS_CODES: 401": {"NON_RETRY_STATUS_CODES": "400,401"},
		"NON_RETRY_STATUS_CODES: 403": {"NON_RETRY_STATUS_CODES": "403"},
		"refused relay's credentials": {"NON_RETRY_STATUS_CODES": "401"},
		"CATERING_SIGNING_SECRET":     {"CATERING_SIGNING_SECRET": "not-a-whsec-secret"},
		"secret 2 of 2":               {"CATERING_SIGNING_SECRET": signingSecret + " whsec_c2hvcnQ="},
		"CATERING_CLIENT_CERT_FILE":   {"CATERING_SERVICE_EP": "https://x/", "CATERING_CLIENT_CERT_FILE": "/c.pem"},
		"need an https":               {"CATERING_CA_FILE": "/ca.pem"},
		"FORWARDER_ADMIN_TOKEN":       {"FORWARDER_ADMIN_TOKEN": "short"},
		"FORWARDER_ADMIN_TOKEN_FILE":  {"FORWARDER_ADMIN_TOKEN_FILE": "/nonexistent/token"},
		"set one, not both":           {"FORWARDER_ADMIN_TOKEN": adminToken, "FORWARDER_ADMIN_TOKEN_FILE": "/nonexistent/token"},
		"AMQP_URL: URL 2 of 2":        {"AMQP_URL": "amqp://u:p@rabbit-1/,ftp://rabbit-2/", "RABBITMQ_MANAGEMENT_URL": "off"},
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

const (
	signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	adminToken    = "forwarder-admin-token-0123456789"
)

func TestLoad_Security(t *testing.T) {
	c, err := load(map[string]string{
		"CATERING_SERVICE_EP":       "https://relay:pw@catering.example/c",
		"CATERING_SIGNING_SECRET":   signingSecret + " " + signingSecret,
		"CATERING_CA_FILE":          "/ca.pem",
		"CATERING_CLIENT_CERT_FILE": "/c.pem",
		"CATERING_CLIENT_KEY_FILE":  "/k.pem",
		"FORWARDER_ADMIN_TOKEN":     adminToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.SigningSecret) != signingSecret+" "+signingSecret || string(c.AdminToken) != adminToken ||
		c.BackendTLS.CA != "/ca.pem" || c.BackendTLS.Cert != "/c.pem" || c.BackendTLS.Key != "/k.pem" {
		t.Errorf("loaded %+v", c)
	}

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = load(map[string]string{"FORWARDER_ADMIN_TOKEN_FILE": file})
	if err != nil || string(c.AdminToken) != adminToken {
		t.Errorf("token from file: %q, %v", c.AdminToken, err)
	}
}

// The secrets of a configuration never show, printed or logged, and a
// refused configuration's errors name the variable, not its secret value,
// nor the endpoint's password. (The URLs are plain strings: they are shown
// through RedactURL.)
func TestConfig_NeverShowsSecrets(t *testing.T) {
	env := map[string]string{
		"CATERING_SERVICE_EP":     "https://relay:endpoint-pw@catering.example/c",
		"CATERING_SIGNING_SECRET": signingSecret,
		"FORWARDER_ADMIN_TOKEN":   adminToken,
	}
	c, err := load(env)
	if err != nil {
		t.Fatal(err)
	}
	c.Endpoint, c.AMQPURL = "", ""
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c, "token", c.AdminToken)
	shown := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"slog": logged.String(), "RedactURL": config.RedactURL(env["CATERING_SERVICE_EP"]),
	}
	// Refused configurations: their errors name the variable, not the value.
	for _, bad := range []map[string]string{
		{"CATERING_SERVICE_EP": "ftp://relay:endpoint-pw@catering.example/c"},
		{"CATERING_SERVICE_EP": "http://relay:endpoint-pw@cater ing.example:x/c"},
		{"CATERING_SIGNING_SECRET": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"CATERING_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8I"},
		{"FORWARDER_ADMIN_TOKEN": "token with spaces inside"},
	} {
		_, err := load(bad)
		if err == nil {
			t.Fatalf("%v accepted", bad)
		}
		shown[fmt.Sprint(bad)] = err.Error()
	}
	for how, s := range shown {
		for _, secret := range []string{"endpoint-pw", "MfKQ9r8GKYqrTwjUPD8I", adminToken, "spaces inside"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows %q: %s", how, secret, s)
			}
		}
	}
	if !strings.Contains(shown["RedactURL"], "relay:xxxxx@catering.example") {
		t.Errorf("RedactURL = %q, want the user kept and the password masked", shown["RedactURL"])
	}
}
