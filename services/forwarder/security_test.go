package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/testcert"
	"github.com/railco/relay/services/forwarder/internal/webhooktest"
)

const (
	testSigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testAdminToken    = "admin-token-7d1f0c2e9b4a"
)

// With FORWARDER_ADMIN_TOKEN, /metrics (and whatever else the admin port
// serves but the health checks) wants the bearer token; /healthz and
// /readyz stay open for the kubelet.
func TestAdminHandler_TokenGuardsAllButHealthChecks(t *testing.T) {
	var consuming atomic.Bool
	consuming.Store(true)
	brk := breaker.New(breaker.Options{Threshold: 1, Window: 1, MinMessages: 1, ProbeInterval: time.Second, ProbeMax: time.Second}, slog.New(slog.DiscardHandler))
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "relay_up 1\n") })
	get := func(h http.Handler, path, auth string) *http.Response {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}

	guarded := adminHandler(&consuming, brk, metrics, testAdminToken, false, nil)
	tests := []struct {
		path, auth string
		want       int
	}{
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer wrong-token-of-some-length", http.StatusUnauthorized},
		{"/metrics", "Bearer " + testAdminToken + "x", http.StatusUnauthorized},
		{"/metrics", "Bearer " + testAdminToken[:len(testAdminToken)-1], http.StatusUnauthorized},
		{"/metrics", "Basic " + testAdminToken, http.StatusUnauthorized},
		{"/metrics", testAdminToken, http.StatusUnauthorized},
		{"/metrics", "Bearer " + testAdminToken, http.StatusOK},
		{"/metrics", "bearer " + testAdminToken, http.StatusOK}, // the scheme is case-insensitive
		{"/debug/pprof/", "", http.StatusUnauthorized},          // unknown paths tell nothing without the token
		{"/debug/pprof/", "Bearer " + testAdminToken, http.StatusNotFound},
	}
	for _, tt := range tests {
		resp := get(guarded, tt.path, tt.auth)
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s with %q: %d, want %d", tt.path, tt.auth, resp.StatusCode, tt.want)
		}
		if resp.StatusCode == http.StatusUnauthorized {
			var body map[string]string
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || json.NewDecoder(resp.Body).Decode(&body) != nil || body["error"] == "" {
				t.Errorf("GET %s: 401 without WWW-Authenticate: Bearer and a JSON error (%q)", tt.path, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	if resp := get(adminHandler(&consuming, brk, metrics, "", false, nil), "/metrics", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("without a token configured /metrics answers %d, want 200", resp.StatusCode)
	}

	// FORWARDER_PPROF=on: the profiles, behind the token like /metrics.
	profiled := adminHandler(&consuming, brk, metrics, testAdminToken, true, nil)
	if resp := get(profiled, "/debug/pprof/", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("pprof on: GET /debug/pprof/ without the token: %d, want 401", resp.StatusCode)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1"} {
		if resp := get(profiled, path, "Bearer "+testAdminToken); resp.StatusCode != http.StatusOK {
			t.Errorf("pprof on: GET %s with the token: %d, want 200", path, resp.StatusCode)
		}
	}
	if resp := get(adminHandler(&consuming, brk, metrics, "", true, nil), "/debug/pprof/cmdline", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("pprof on, no token configured: GET /debug/pprof/cmdline: %d, want 200", resp.StatusCode)
	}
}

// The backend URL's password, the signing secret and the admin token appear
// in no log line and in no dead-letter header: not at start, not in the
// errors of attempts that timed out (net/http puts the URL in those), not in
// the dead letter they end in.
func TestRun_NeverShowsSecrets(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)
	var mu sync.Mutex
	var signed []error
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Idempotency-Key") == "hangs" {
			<-r.Context().Done() // until DELIVERY_TIMEOUT: an error that names the URL
			return
		}
		mu.Lock()
		signed = append(signed, webhooktest.Verify(testSigningSecret, r.Header, body, time.Now(), 5*time.Minute))
		mu.Unlock()
	}))
	defer be.Close()
	env["CATERING_SERVICE_EP"] = strings.Replace(be.URL, "http://", "http://relay:s3cr3t-pw@", 1) + "/catering"
	env["CATERING_SIGNING_SECRET"] = testSigningSecret
	env["FORWARDER_ADMIN_TOKEN"] = testAdminToken
	env["DELIVERY_TIMEOUT"] = "300ms"
	logs := newLogBuffer()
	stop := startRun(t, env, logs)
	waitConsuming(t, conn, topo)
	publish(t, conn, topo, "hangs", `{}`)
	publish(t, conn, topo, "signed", `{"passengerId":"241241d"}`)

	dead := brokertest.Get(t, conn, topo.DeadQueue, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if m := envelope.Read(dead); dead.MessageId != "hangs" || m.Reason != envelope.ReasonMaxAttempts || !strings.Contains(m.LastError, "relay:") {
		t.Errorf("dead letter %q: reason %q, last error %q; want max-attempts after timeouts naming the URL", dead.MessageId, m.Reason, m.LastError)
	}
	mu.Lock()
	if len(signed) != 1 || signed[0] != nil {
		t.Errorf("signature checks %v, want one that passed", signed)
	}
	mu.Unlock()
	out := logs.String()
	if !strings.Contains(out, `"endpoint":"http://relay:xxxxx@`) {
		t.Errorf("the start line does not show the endpoint masked:\n%s", out)
	}
	for _, secret := range []string{"s3cr3t", testSigningSecret, strings.TrimPrefix(testSigningSecret, "whsec_"), testAdminToken} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
		for k, v := range dead.Headers {
			if strings.Contains(fmt.Sprint(v), secret) {
				t.Errorf("dead-letter header %s shows %q: %v", k, secret, v)
			}
		}
	}
}

// Over https with a private CA (CATERING_CA_FILE) to a backend that
// requires relay's client certificate, deliveries arrive, signed.
func TestRun_DeliversSignedOverMutualTLS(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)
	ca := testcert.NewCA(t, "catering-ca")
	clients := testcert.NewCA(t, "catering-clients")
	relay := clients.Client(t, "relay")
	got := make(chan string, 1)
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhooktest.Verify(testSigningSecret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got <- r.TLS.PeerCertificates[0].Subject.CommonName + " " + r.Header.Get("webhook-id")
	}))
	be.Config.ErrorLog = log.New(io.Discard, "", 0)
	be.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "backend").TLS}, ClientCAs: clients.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	be.StartTLS()
	defer be.Close()
	env["CATERING_SERVICE_EP"] = be.URL + "/catering"
	env["CATERING_CA_FILE"] = ca.File
	env["CATERING_CLIENT_CERT_FILE"], env["CATERING_CLIENT_KEY_FILE"] = relay.CertFile, relay.KeyFile
	env["CATERING_SIGNING_SECRET"] = testSigningSecret
	stop := startRun(t, env, io.Discard)
	waitConsuming(t, conn, topo)
	publish(t, conn, topo, "over-mtls", `{}`)
	select {
	case who := <-got:
		if who != "relay over-mtls" {
			t.Errorf("backend saw %q, want relay's certificate and the message id", who)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not delivered over mutual TLS")
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}
