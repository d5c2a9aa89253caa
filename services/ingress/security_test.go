package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/metrics/metricstest"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/metrics"
)

// Keys of the tests: easy to grep for in the logs.
const (
	keyBooking = "K3y-booking-0123456789abcdef"
	keyMobile  = "K3y-mobile-0123456789abcdef"
	keyRotated = "K3y-rotated-0123456789abcdef"
	adminToken = "adm1n-t0ken-0123456789"
)

// writeKeys writes a keys file through a rename, as an operator (or
// Kubernetes) should, so that a poll never reads half a file.
func writeKeys(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// keysEnv is baseEnv with a keys file of two clients, polled every interval
// ("0": SIGHUP only); it returns the file's path.
func keysEnv(t *testing.T, interval string) (map[string]string, topology.Config, string) {
	t.Helper()
	env, tcfg := baseEnv(t)
	path := filepath.Join(t.TempDir(), "api-keys")
	writeKeys(t, path, "# test clients\nrailco-booking:"+keyBooking+"\nrailco-mobile:"+keyMobile+"\n")
	env["INGRESS_API_KEYS_FILE"] = path
	env["INGRESS_API_KEYS_POLL_INTERVAL"] = interval
	return env, tcfg, path
}

// register posts the seed with header (name, value pairs) through c.
func register(t *testing.T, c *http.Client, url string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/catering/register", bytes.NewReader(seedBody(t)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, header: res.Header}
	if err := json.NewDecoder(res.Body).Decode(&a.body); err != nil {
		t.Fatalf("POST: status %d, body is not JSON: %v", res.StatusCode, err)
	}
	return a
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

func depth(t *testing.T, tcfg topology.Config) int {
	t.Helper()
	return brokertest.Depth(t, brokertest.Dial(t), topology.New(tcfg).Queue)
}

// scrape reads the admin port's metrics with header.
func scrape(t *testing.T, in *ingress, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, in.adminURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestRun_APIKeysAreRequired(t *testing.T) {
	env, tcfg, _ := keysEnv(t, "0")
	in := start(t, env)
	in.waitReady(t)

	tests := []struct {
		name      string
		header    []string
		challenge string
		reason    string
	}{
		{"missing", nil, `Bearer realm="relay"`, "missing"},
		{"wrong", bearer("wrong-key-0123456789abcdef"), `Bearer realm="relay", error="invalid_token"`, "invalid"},
		{"malformed", []string{"Authorization", "Bearer"}, `Bearer realm="relay", error="invalid_request"`, "malformed"},
		{"another scheme", []string{"Authorization", "Basic cmFpbGNvOnNlY3JldA=="}, `Bearer realm="relay"`, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := register(t, client, in.url, tt.header...)
			if res.status != http.StatusUnauthorized {
				t.Fatalf("status %d %v, want 401", res.status, res.body)
			}
			if got := res.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if msg, _ := res.body["error"].(string); msg == "" {
				t.Errorf("body %v: want {\"error\":…}", res.body)
			}
			if n := depth(t, tcfg); n != 0 {
				t.Errorf("queue depth %d, want 0: an unauthenticated registration was stored", n)
			}
		})
	}
	res := register(t, client, in.url, bearer(keyMobile)...)
	if res.status != http.StatusAccepted {
		t.Fatalf("with railco-mobile's key: %d %v, want 202", res.status, res.body)
	}
	if n := depth(t, tcfg); n != 1 {
		t.Errorf("queue depth %d after one 202, want 1", n)
	}
	// Probes stay open, for the kubelet.
	if h := do(t, http.MethodGet, in.url+"/healthz", "", nil); h.status != http.StatusOK {
		t.Errorf("/healthz without a key: %d, want 200", h.status)
	}

	status, text := scrape(t, in)
	if status != http.StatusOK {
		t.Fatalf("GET admin /metrics: %d", status)
	}
	fams := metricstest.Families(t, text)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{metrics.AuthFailures, []string{"reason", "missing"}, 2},
		{metrics.AuthFailures, []string{"reason", "invalid"}, 1},
		{metrics.AuthFailures, []string{"reason", "malformed"}, 1},
		{metrics.ClientRequests, []string{"client", "railco-mobile", "code", "202"}, 1},
		{metrics.ClientRequests, []string{"client", "railco-booking", "code", "202"}, 0},
		{metrics.Requests, []string{"code", "401", "outcome", "invalid_api_key"}, 1},
		{metrics.APIClients, nil, 2},
	} {
		if got, ok := metricstest.Value(t, fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, `"client":"railco-mobile"`) || !strings.Contains(logs, `"msg":"API keys loaded`) {
		t.Errorf("the log does not name the client of the 202, or the keys loaded")
	}
	if strings.Contains(logs, "OPEN") {
		t.Error("the log says the ingress is open although it has keys")
	}
	for _, key := range []string{keyBooking, keyMobile} {
		if strings.Contains(logs, key) {
			t.Errorf("the log contains a key")
		}
	}
}

func TestRun_APIKeysRotateWithoutRestartWhenTheFileChanges(t *testing.T) {
	env, tcfg, path := keysEnv(t, "100ms")
	in := start(t, env)
	in.waitReady(t)
	if res := register(t, client, in.url, bearer(keyBooking)...); res.status != http.StatusAccepted {
		t.Fatalf("the old key before the rotation: %d", res.status)
	}

	writeKeys(t, path, "railco-booking:"+keyRotated+"\n")
	brokertest.Eventually(t, deadline, "the new key to be accepted", func() bool {
		return register(t, client, in.url, bearer(keyRotated)...).status == http.StatusAccepted
	})
	if res := register(t, client, in.url, bearer(keyBooking)...); res.status != http.StatusUnauthorized {
		t.Errorf("the old key after the rotation: %d, want 401", res.status)
	}
	if res := register(t, client, in.url, bearer(keyMobile)...); res.status != http.StatusUnauthorized {
		t.Errorf("a removed client's key: %d, want 401", res.status)
	}
	if n := depth(t, tcfg); n != 2 {
		t.Errorf("queue depth %d, want the 2 accepted", n)
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	if logs := in.logs.String(); !strings.Contains(logs, `"msg":"API keys reloaded"`) || strings.Contains(logs, keyRotated) {
		t.Error("the log lacks the reload, or shows the new key")
	}
}

// SIGHUP goes to this test process, which is safe: run registered for it
// before it listened (start waits for that), and stops only after the test
// has seen the reload.
func TestRun_APIKeysReloadOnSIGHUP(t *testing.T) {
	env, tcfg, path := keysEnv(t, "0") // no polling: only the signal reloads
	in := start(t, env)
	in.waitReady(t)

	writeKeys(t, path, "railco-booking:"+keyRotated+"\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, deadline, "the new key to be accepted after SIGHUP", func() bool {
		return register(t, client, in.url, bearer(keyRotated)...).status == http.StatusAccepted
	})
	if res := register(t, client, in.url, bearer(keyBooking)...); res.status != http.StatusUnauthorized {
		t.Errorf("the old key after SIGHUP: %d, want 401", res.status)
	}
	if n := depth(t, tcfg); n != 1 {
		t.Errorf("queue depth %d, want 1", n)
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run: %v (the signal must not stop the ingress)", err)
	}
	if !strings.Contains(in.logs.String(), `"msg":"SIGHUP: reloading API keys"`) {
		t.Error("the log lacks the SIGHUP")
	}
}

func TestRun_AFailedReloadKeepsTheOldKeys(t *testing.T) {
	env, _, path := keysEnv(t, "100ms")
	in := start(t, env)
	in.waitReady(t)

	// A line without its colon: the key itself would be the "name".
	writeKeys(t, path, "railco-booking:"+keyBooking+"\n"+keyRotated+"\n")
	var text string
	brokertest.Eventually(t, deadline, "the failed reload to be counted", func() bool {
		_, text = scrape(t, in)
		n, _ := metricstest.Value(t, metricstest.Families(t, text), metrics.APIKeyReloads, "result", "failure")
		return n == 1
	})
	if n, _ := metricstest.Value(t, metricstest.Families(t, text), metrics.APIClients); n != 2 {
		t.Errorf("%s = %v, want the 2 clients still in use", metrics.APIClients, n)
	}
	for _, key := range []string{keyBooking, keyMobile} {
		if res := register(t, client, in.url, bearer(key)...); res.status != http.StatusAccepted {
			t.Errorf("an old key after the failed reload: %d, want 202", res.status)
		}
	}
	if res := register(t, client, in.url, bearer(keyRotated)...); res.status != http.StatusUnauthorized {
		t.Errorf("the broken file's key: %d, want 401", res.status)
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, `"level":"ERROR","msg":"API keys NOT reloaded`) || !strings.Contains(logs, "line 2: want name:key") {
		t.Errorf("the log lacks the failed reload naming line 2")
	}
	for _, key := range []string{keyBooking, keyMobile, keyRotated} {
		if strings.Contains(logs, key) {
			t.Error("the log contains a key")
		}
	}
}

func TestRun_ABadKeysFileFailsStart(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          []string
	}{
		{"empty", "", []string{"INGRESS_API_KEYS_FILE", "no clients"}},
		{"only comments", "# to do\n\n", []string{"INGRESS_API_KEYS_FILE", "no clients"}},
		{"malformed", "railco:" + keyBooking + "\n" + keyMobile + "\n", []string{"INGRESS_API_KEYS_FILE", "line 2: want name:key"}},
		{"duplicate key", "a:" + keyBooking + "\nb:" + keyBooking + "\n", []string{"line 2: the key is already on line 1"}},
		{"missing", "<none>", []string{"INGRESS_API_KEYS_FILE", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.content != "<none>" {
				writeKeys(t, path, tt.content)
			}
			env := map[string]string{"INGRESS_API_KEYS_FILE": path, "INGRESS_ADDR": "127.0.0.1:0", "INGRESS_ADMIN_ADDR": "127.0.0.1:0"}
			err := run(context.Background(), func(k string) string { return env[k] }, io.Discard)
			if err == nil {
				t.Fatal("run started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, key := range []string{keyBooking, keyMobile} {
				if strings.Contains(err.Error(), key) {
					t.Errorf("error %q shows a key", err)
				}
			}
		})
	}
}

func TestRun_WithoutKeysIsOpenAndSaysSo(t *testing.T) {
	env, tcfg := baseEnv(t)
	in := start(t, env)
	in.waitReady(t)
	if res := register(t, client, in.url); res.status != http.StatusAccepted {
		t.Fatalf("the seed's curl, no key: %d %v, want 202", res.status, res.body)
	}
	if n := depth(t, tcfg); n != 1 {
		t.Errorf("queue depth %d, want 1", n)
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, `"level":"WARN","msg":"INGRESS_API_KEYS_FILE is not set: the ingress is OPEN`) {
		t.Error("no WARN line says the ingress is open")
	}
	if !strings.Contains(logs, `"client":"anonymous"`) {
		t.Error("the request log does not name the client anonymous")
	}
}

func TestRun_OverTheRateLimitIs429PerClient(t *testing.T) {
	env, tcfg, _ := keysEnv(t, "0")
	// Two at once, then one every 1000s: the third is refused whatever the
	// test's speed.
	env["INGRESS_RATE_LIMIT"] = "0.001"
	env["INGRESS_RATE_BURST"] = "2"
	in := start(t, env)
	in.waitReady(t)

	for i := range 2 {
		if res := register(t, client, in.url, bearer(keyBooking)...); res.status != http.StatusAccepted {
			t.Fatalf("request %d within the burst: %d %v", i+1, res.status, res.body)
		}
	}
	res := register(t, client, in.url, bearer(keyBooking)...)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("over the burst: %d %v, want 429", res.status, res.body)
	}
	if secs, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || secs < 1 || secs > 1000 {
		t.Errorf("Retry-After %q, want the seconds until a token (1…1000)", res.header.Get("Retry-After"))
	}
	if msg, _ := res.body["error"].(string); !strings.Contains(msg, "too many requests") {
		t.Errorf("body %v", res.body)
	}
	if res := register(t, client, in.url, bearer(keyMobile)...); res.status != http.StatusAccepted {
		t.Errorf("another client: %d, want 202 (an allowance of its own)", res.status)
	}
	if n := depth(t, tcfg); n != 3 {
		t.Errorf("queue depth %d, want the 3 accepted: the refused one was stored", n)
	}
	_, text := scrape(t, in)
	fams := metricstest.Families(t, text)
	for _, tt := range []struct {
		labels []string
		want   float64
	}{{[]string{"client", "railco-booking"}, 1}, {[]string{"client", "railco-mobile"}, 0}} {
		if got, ok := metricstest.Value(t, fams, metrics.RateLimited, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v, want %v", metrics.RateLimited, tt.labels, got, tt.want)
		}
	}
	if got, _ := metricstest.Value(t, fams, metrics.ClientRequests, "client", "railco-booking", "code", "429"); got != 1 {
		t.Errorf("%s{railco-booking,429} = %v, want 1", metrics.ClientRequests, got)
	}
}

// clientFrom makes requests from the local address ip (any 127.0.0.0/8
// address is this host's on Linux).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: deadline}
	return &http.Client{Timeout: deadline, Transport: &http.Transport{DisableKeepAlives: true, DialContext: d.DialContext}}
}

func TestRun_OpenIngressLimitsPerAddress(t *testing.T) {
	env, tcfg := baseEnv(t)
	env["INGRESS_RATE_LIMIT"] = "0.001"
	env["INGRESS_RATE_BURST"] = "1"
	in := start(t, env)
	in.waitReady(t)

	from1, from2 := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	if res := register(t, from1, in.url); res.status != http.StatusAccepted {
		t.Fatalf("127.0.0.1's first: %d %v", res.status, res.body)
	}
	res := register(t, from1, in.url)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("127.0.0.1's second: %d, Retry-After %q; want 429 with Retry-After", res.status, res.header.Get("Retry-After"))
	}
	if res := register(t, from2, in.url); res.status != http.StatusAccepted {
		t.Errorf("127.0.0.2's first: %d, want 202 (another address, another allowance)", res.status)
	}
	if n := depth(t, tcfg); n != 2 {
		t.Errorf("queue depth %d, want 2", n)
	}
	_, text := scrape(t, in)
	if got, _ := metricstest.Value(t, metricstest.Families(t, text), metrics.RateLimited, "client", "anonymous"); got != 1 {
		t.Errorf("%s{anonymous} = %v, want 1 (never an address as a label)", metrics.RateLimited, got)
	}
}

func TestRun_MetricsAreOnlyOnTheAdminPort(t *testing.T) {
	env, _ := baseEnv(t)
	in := start(t, env)
	in.waitReady(t)
	res, err := client.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("public GET /metrics: %d, want 404", res.StatusCode)
	}
	if status, text := scrape(t, in); status != http.StatusOK || !strings.Contains(text, metrics.Requests) {
		t.Errorf("admin GET /metrics: %d, want 200 with the metrics", status)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		for _, base := range []string{in.url, in.adminURL} {
			if a := do(t, http.MethodGet, base+path, "", nil); a.status != http.StatusOK {
				t.Errorf("GET %s%s: %d, want 200", base, path, a.status)
			}
		}
	}
}

func TestRun_TheAdminTokenGuardsTheAdminPort(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"INGRESS_ADMIN_TOKEN", func(*testing.T) map[string]string {
			return map[string]string{"INGRESS_ADMIN_TOKEN": adminToken}
		}},
		{"INGRESS_ADMIN_TOKEN_FILE", func(t *testing.T) map[string]string {
			path := filepath.Join(t.TempDir(), "admin-token")
			if err := os.WriteFile(path, []byte(adminToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return map[string]string{"INGRESS_ADMIN_TOKEN_FILE": path}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := baseEnv(t)
			for k, v := range tt.env(t) {
				env[k] = v
			}
			in := start(t, env)
			in.waitReady(t) // the public port's probes need no token
			for _, header := range [][]string{nil, bearer("wrong"), bearer(keyBooking)} {
				if status, _ := scrape(t, in, header...); status != http.StatusUnauthorized {
					t.Errorf("admin /metrics with %q: %d, want 401", header, status)
				}
			}
			if status, text := scrape(t, in, bearer(adminToken)...); status != http.StatusOK || !strings.Contains(text, metrics.Requests) {
				t.Errorf("admin /metrics with the token: %d, want 200", status)
			}
			if err := in.stop(t); err != nil {
				t.Fatalf("run: %v", err)
			}
			if strings.Contains(in.logs.String(), adminToken) {
				t.Error("the log contains the admin token")
			}
		})
	}
}
