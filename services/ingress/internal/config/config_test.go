package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkgconfig "github.com/railco/relay/pkg/config"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// sharedTopology is what pkg/topology reads from the same environment (its
// own tests check its defaults); checkTopology checks the settings these
// tests set or rely on, so that a setting topology adds needs no change here.
func sharedTopology(getenv func(string) string) topology.Config {
	return topology.LoadConfig(pkgconfig.NewLoader(getenv))
}

func checkTopology(t *testing.T, got, want topology.Config) {
	t.Helper()
	if got.Prefix != want.Prefix || got.MaxAttempts != want.MaxAttempts || got.RetryInitial != want.RetryInitial ||
		got.RetryMultiplier != want.RetryMultiplier || got.RetryMax != want.RetryMax || got.DeliveryLimit != want.DeliveryLimit {
		t.Errorf("topology:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoad_Defaults(t *testing.T) {
	got, err := config.Load(env(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		Addr:                ":8290",
		AddrFile:            "",
		AdminAddr:           ":8292",
		APIKeysPollInterval: 5 * time.Second,
		AMQPURL:             "amqp://guest:guest@localhost:5672/",
		PublishTimeout:      5 * time.Second,
		EventsLinger:        100 * time.Millisecond,
		MaxBodyBytes:        65536,
		PublisherChannels:   4,
		MaxConnections:      1024,
		ReadTimeout:         10 * time.Second,
		WriteTimeout:        20 * time.Second,
		IdleTimeout:         30 * time.Second,
		ShutdownTimeout:     15 * time.Second,
		RetryAfter:          5 * time.Second,
		LogLevel:            "info",
		LogFormat:           "json",
		IndexPath:           config.DefaultIndexPath("catering"),
		IndexMaxAge:         7 * 24 * time.Hour,
		Topology:            sharedTopology(env(nil)),
		Metrics:             pkgmetrics.Config{QueueInterval: 10 * time.Second},
	}
	if got != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if got.PProf {
		t.Error("INGRESS_PPROF is on by default; profiles must be turned on by an operator")
	}
	checkTopology(t, got.Topology, topology.Config{
		Prefix:          "catering",
		MaxAttempts:     4,
		RetryInitial:    time.Second,
		RetryMultiplier: 5,
		RetryMax:        10 * time.Minute,
		DeliveryLimit:   100,
	})
}

func TestLoad_Overrides(t *testing.T) {
	vars := map[string]string{
		"INGRESS_ADDR":                   "127.0.0.1:0",
		"INGRESS_ADDR_FILE":              "/tmp/addr",
		"INGRESS_ADMIN_ADDR":             "127.0.0.1:9000",
		"INGRESS_ADMIN_ADDR_FILE":        "/tmp/admin-addr",
		"INGRESS_ADMIN_TOKEN":            "s3cret-admin-token",
		"INGRESS_PPROF":                  "on",
		"INGRESS_API_KEYS_FILE":          "/etc/relay/keys",
		"INGRESS_API_KEYS_POLL_INTERVAL": "1s",
		"INGRESS_RATE_LIMIT":             "2.5",
		"INGRESS_RATE_BURST":             "10",
		"AMQP_URL":                       "amqps://u:p@rabbit:5671/relay",
		"PUBLISH_TIMEOUT":                "2s",
		"INGRESS_EVENTS_LINGER":          "20ms",
		"MAX_BODY_BYTES":                 "1024",
		"PUBLISHER_CHANNELS":             "8",
		"INGRESS_MAX_CONNECTIONS":        "64",
		"INGRESS_READ_TIMEOUT":           "3s",
		"INGRESS_WRITE_TIMEOUT":          "6s",
		"INGRESS_IDLE_TIMEOUT":           "90s",
		"SHUTDOWN_TIMEOUT":               "30s",
		"RETRY_AFTER":                    "10s",
		"LOG_LEVEL":                      "debug",
		"LOG_FORMAT":                     "text",
		"TOPOLOGY_PREFIX":                "test.x",
		"MAX_DELIVERY_ATTEMPTS":          "6",
		"RETRY_INITIAL_INTERVAL":         "200ms",
		"RETRY_MULTIPLIER":               "2.5",
		"RETRY_MAX_INTERVAL":             "1m",
		"QUEUE_DELIVERY_LIMIT":           "50",
		"QUEUE_METRICS_INTERVAL":         "0",
		"INGRESS_INDEX_MAX_AGE":          "48h",
	}
	got, err := config.Load(env(vars))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		Addr:                "127.0.0.1:0",
		AddrFile:            "/tmp/addr",
		AdminAddr:           "127.0.0.1:9000",
		AdminAddrFile:       "/tmp/admin-addr",
		AdminToken:          "s3cret-admin-token",
		PProf:               true,
		APIKeysFile:         "/etc/relay/keys",
		APIKeysPollInterval: time.Second,
		RateLimit:           2.5,
		RateBurst:           10,
		AMQPURL:             "amqps://u:p@rabbit:5671/relay",
		PublishTimeout:      2 * time.Second,
		EventsLinger:        20 * time.Millisecond,
		MaxBodyBytes:        1024,
		PublisherChannels:   8,
		MaxConnections:      64,
		ReadTimeout:         3 * time.Second,
		WriteTimeout:        6 * time.Second,
		IdleTimeout:         90 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		RetryAfter:          10 * time.Second,
		LogLevel:            "debug",
		LogFormat:           "text",
		IndexPath:           config.DefaultIndexPath("test.x"),
		IndexMaxAge:         48 * time.Hour,
		Topology:            sharedTopology(env(vars)),
		Metrics:             pkgmetrics.Config{QueueInterval: 0},
	}
	if got != want {
		t.Errorf("overrides:\n got %+v\nwant %+v", got, want)
	}
	checkTopology(t, got.Topology, topology.Config{
		Prefix:          "test.x",
		MaxAttempts:     6,
		RetryInitial:    200 * time.Millisecond,
		RetryMultiplier: 2.5,
		RetryMax:        time.Minute,
		DeliveryLimit:   50,
	})
}

func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings the error must contain
	}{
		{"unparseable duration", map[string]string{"PUBLISH_TIMEOUT": "soon"}, []string{`PUBLISH_TIMEOUT="soon"`, "not a duration"}},
		{"unparseable int", map[string]string{"MAX_BODY_BYTES": "64k"}, []string{`MAX_BODY_BYTES="64k"`, "not an integer"}},
		{"addr without port", map[string]string{"INGRESS_ADDR": "localhost"}, []string{"INGRESS_ADDR", "host:port"}},
		{"amqp url scheme", map[string]string{"AMQP_URL": "http://guest:secret@rabbit/"}, []string{"AMQP_URL"}},
		{"cluster nodes", map[string]string{"AMQP_URL": "amqp://u:p@rabbit-1:5672/,amqp://u:p@rabbit-2:5672/,amqp://u:p@rabbit-3:5672/"}, nil},
		{"cluster node not amqp", map[string]string{"AMQP_URL": "amqp://u:secret@rabbit-1:5672/,http://u:secret@rabbit-2/"}, []string{"AMQP_URL: URL 2 of 2 (http://u:xxxxx@rabbit-2/)"}},
		{"zero publish timeout", map[string]string{"PUBLISH_TIMEOUT": "0s"}, []string{"PUBLISH_TIMEOUT must be positive"}},
		{"events linger too long", map[string]string{"INGRESS_EVENTS_LINGER": "2s"}, []string{"INGRESS_EVENTS_LINGER must be between 0 and 1s"}},
		{"negative index max age", map[string]string{"INGRESS_INDEX_MAX_AGE": "-1h"}, []string{"INGRESS_INDEX_MAX_AGE must not be negative"}},
		{"index never trimmed", map[string]string{"INGRESS_INDEX_MAX_AGE": "0"}, nil},
		{"zero body limit", map[string]string{"MAX_BODY_BYTES": "0"}, []string{"MAX_BODY_BYTES must be between"}},
		{"huge body limit", map[string]string{"MAX_BODY_BYTES": "200000000"}, []string{"MAX_BODY_BYTES must be between"}},
		{"zero channels", map[string]string{"PUBLISHER_CHANNELS": "0"}, []string{"PUBLISHER_CHANNELS must be between"}},
		{"negative connections", map[string]string{"INGRESS_MAX_CONNECTIONS": "-1"}, []string{"INGRESS_MAX_CONNECTIONS must be 0 (no limit) or more"}},
		{"zero read timeout", map[string]string{"INGRESS_READ_TIMEOUT": "0s", "INGRESS_WRITE_TIMEOUT": "1m"}, []string{"INGRESS_READ_TIMEOUT must be positive"}},
		{"write timeout not above read + publish", map[string]string{"INGRESS_READ_TIMEOUT": "10s", "PUBLISH_TIMEOUT": "5s", "INGRESS_WRITE_TIMEOUT": "15s"},
			[]string{"INGRESS_WRITE_TIMEOUT must be above INGRESS_READ_TIMEOUT + PUBLISH_TIMEOUT"}},
		{"write timeout below publish timeout", map[string]string{"PUBLISH_TIMEOUT": "30s", "SHUTDOWN_TIMEOUT": "1m"},
			[]string{"INGRESS_WRITE_TIMEOUT must be above INGRESS_READ_TIMEOUT + PUBLISH_TIMEOUT"}},
		{"write timeout just above read + publish", map[string]string{"INGRESS_READ_TIMEOUT": "10s", "PUBLISH_TIMEOUT": "5s", "INGRESS_WRITE_TIMEOUT": "15001ms"}, nil},
		{"zero idle timeout", map[string]string{"INGRESS_IDLE_TIMEOUT": "0s"}, []string{"INGRESS_IDLE_TIMEOUT must be at least 1s"}},
		{"no connection limit", map[string]string{"INGRESS_MAX_CONNECTIONS": "0"}, nil},
		{"too many channels", map[string]string{"PUBLISHER_CHANNELS": "5000"}, []string{"PUBLISHER_CHANNELS must be between"}},
		{"shutdown not above publish timeout", map[string]string{"SHUTDOWN_TIMEOUT": "5s"}, []string{"SHUTDOWN_TIMEOUT must be above PUBLISH_TIMEOUT"}},
		{"retry after below a second", map[string]string{"RETRY_AFTER": "500ms"}, []string{"RETRY_AFTER must be a whole number of seconds"}},
		{"retry after fractional", map[string]string{"RETRY_AFTER": "1500ms"}, []string{"RETRY_AFTER must be a whole number of seconds"}},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, []string{"LOG_LEVEL"}},
		{"log format", map[string]string{"LOG_FORMAT": "xml"}, []string{"LOG_FORMAT"}},
		{"topology prefix", map[string]string{"TOPOLOGY_PREFIX": ""}, nil}, // blank means default: no error
		{"topology attempts", map[string]string{"MAX_DELIVERY_ATTEMPTS": "0"}, []string{"MAX_DELIVERY_ATTEMPTS must be at least 1"}},
		{"topology multiplier", map[string]string{"RETRY_MULTIPLIER": "0.5"}, []string{"RETRY_MULTIPLIER must be at least 1"}},
		{"topology delivery limit", map[string]string{"QUEUE_DELIVERY_LIMIT": "3"}, []string{"QUEUE_DELIVERY_LIMIT must be above MAX_DELIVERY_ATTEMPTS"}},
		{"queue metrics interval", map[string]string{"QUEUE_METRICS_INTERVAL": "10ms"}, []string{"QUEUE_METRICS_INTERVAL must be 0 (off) or at least 1s"}},
		{"admin addr without port", map[string]string{"INGRESS_ADMIN_ADDR": "localhost"}, []string{"INGRESS_ADMIN_ADDR", "host:port"}},
		{"admin addr is the public addr", map[string]string{"INGRESS_ADDR": ":9000", "INGRESS_ADMIN_ADDR": ":9000"},
			[]string{"INGRESS_ADMIN_ADDR must differ from INGRESS_ADDR"}},
		{"both on port 0", map[string]string{"INGRESS_ADDR": "127.0.0.1:0", "INGRESS_ADMIN_ADDR": "127.0.0.1:0"}, nil},
		{"admin token and token file", map[string]string{"INGRESS_ADMIN_TOKEN": "abc", "INGRESS_ADMIN_TOKEN_FILE": "/run/secrets/t"},
			[]string{"set INGRESS_ADMIN_TOKEN or INGRESS_ADMIN_TOKEN_FILE, not both"}},
		{"admin token with a space", map[string]string{"INGRESS_ADMIN_TOKEN": "two words two words"}, []string{"INGRESS_ADMIN_TOKEN must be printable ASCII"}},
		{"admin token too short", map[string]string{"INGRESS_ADMIN_TOKEN": "short"}, []string{"INGRESS_ADMIN_TOKEN must be at least 16 characters"}},
		{"keys poll interval too short", map[string]string{"INGRESS_API_KEYS_POLL_INTERVAL": "5ms"},
			[]string{"INGRESS_API_KEYS_POLL_INTERVAL must be 0 (on SIGHUP only) or at least 100ms"}},
		{"keys poll off", map[string]string{"INGRESS_API_KEYS_POLL_INTERVAL": "0"}, nil},
		{"negative rate limit", map[string]string{"INGRESS_RATE_LIMIT": "-1"}, []string{"INGRESS_RATE_LIMIT must be 0 (no limit) or a positive number"}},
		{"NaN rate limit", map[string]string{"INGRESS_RATE_LIMIT": "NaN"}, []string{"INGRESS_RATE_LIMIT must be 0"}},
		{"infinite rate limit", map[string]string{"INGRESS_RATE_LIMIT": "+Inf"}, []string{"INGRESS_RATE_LIMIT must be 0"}},
		{"unparseable rate limit", map[string]string{"INGRESS_RATE_LIMIT": "100/s"}, []string{`INGRESS_RATE_LIMIT="100/s"`, "not a number"}},
		{"negative burst", map[string]string{"INGRESS_RATE_LIMIT": "10", "INGRESS_RATE_BURST": "-1"}, []string{"INGRESS_RATE_BURST must be 0"}},
		{"all problems at once", map[string]string{"LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "PUBLISHER_CHANNELS": "0", "RETRY_MULTIPLIER": "x"},
			[]string{"LOG_LEVEL", "LOG_FORMAT", "PUBLISHER_CHANNELS", `RETRY_MULTIPLIER="x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(tt.env))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Load: unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load: no error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidate_NeverLeaksAMQPPassword(t *testing.T) {
	for _, raw := range []string{"http://guest:s3cret@rabbit/", "amqp://guest:s3cret@rabbit:notaport/", "amqp://guest:s3cret@[::1/"} {
		t.Run(raw, func(t *testing.T) {
			cfg, _ := config.Load(env(nil))
			cfg.AMQPURL = raw
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate(%q): no error", raw)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestLoad_RateBurstDefaultsToOneSecondsWorth(t *testing.T) {
	tests := []struct {
		rate, burst string
		want        int
	}{
		{"", "", 0},       // no limit, no burst
		{"100", "", 100},  // one second's worth
		{"2.5", "", 3},    // rounded up
		{"0.2", "", 1},    // at least one request
		{"100", "20", 20}, // as set
		{"100", "0", 100}, // 0 is the default
		{"0", "50", 50},   // kept, unused
	}
	for _, tt := range tests {
		t.Run(tt.rate+"/"+tt.burst, func(t *testing.T) {
			cfg, err := config.Load(env(map[string]string{"INGRESS_RATE_LIMIT": tt.rate, "INGRESS_RATE_BURST": tt.burst}))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.RateBurst != tt.want {
				t.Errorf("RateBurst %d, want %d", cfg.RateBurst, tt.want)
			}
		})
	}
}

func TestSecret_NeverPrinted(t *testing.T) {
	cfg, err := config.Load(env(map[string]string{"INGRESS_ADMIN_TOKEN": "s3cret-admin-token"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, cfg); strings.Contains(out, "s3cret") {
			t.Errorf("%s prints the admin token: %s", format, out)
		}
	}
	if string(cfg.AdminToken) != "s3cret-admin-token" {
		t.Errorf("AdminToken %q lost its value", string(cfg.AdminToken))
	}
}

func TestAdminBearer(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"none", nil, "", ""},
		{"from the variable", map[string]string{"INGRESS_ADMIN_TOKEN": "tok-1-0123456789abcdef"}, "tok-1-0123456789abcdef", ""},
		{"from a file, newline trimmed", map[string]string{"INGRESS_ADMIN_TOKEN_FILE": write("t", "tok-2-0123456789abcdef\n")}, "tok-2-0123456789abcdef", ""},
		{"too short in a file", map[string]string{"INGRESS_ADMIN_TOKEN_FILE": write("short", "Zq8x-short\n")}, "", "at least 16 characters"},
		{"empty file", map[string]string{"INGRESS_ADMIN_TOKEN_FILE": write("empty", "\n")}, "", "is empty"},
		{"two words", map[string]string{"INGRESS_ADMIN_TOKEN_FILE": write("words", "Zq8x Wv3\n")}, "", "printable ASCII"},
		{"missing file", map[string]string{"INGRESS_ADMIN_TOKEN_FILE": filepath.Join(dir, "nope")}, "", "INGRESS_ADMIN_TOKEN_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.AdminBearer()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AdminBearer = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "Zq8x") {
					t.Errorf("error %q shows the token", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("AdminBearer = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
