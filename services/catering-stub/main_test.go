package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is run's stdout: the server logs from its own goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitForFile polls for path, the way a test in another module waits for a
// started binary, and returns its content.
func waitForFile(t *testing.T, path string, runErr <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return string(b)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("read %s: %v", path, err)
		}
		select {
		case err := <-runErr:
			t.Fatalf("run returned before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRun_ServesUntilCancelled(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "stub.addr")
	env := map[string]string{
		"STUB_ADDR":      "127.0.0.1:0",
		"STUB_ADDR_FILE": addrFile,
		"LOG_LEVEL":      "debug",
	}
	var stdout syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, func(k string) string { return env[k] }, &stdout) }()

	addr := waitForFile(t, addrFile, runErr)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("address file holds %q, want the bound 127.0.0.1 port", addr)
	}
	if !strings.Contains(stdout.String(), `"msg":"catering stub listening","addr":"`+addr+`"`) {
		t.Fatalf("no listening line with addr %s in:\n%s", addr, stdout.String())
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "http://" + addr

	const body = "{ \"orderId\" : 7 }\n"
	req, err := http.NewRequest(http.MethodPost, base+"/catering", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", "e2e-1")
	req.Header.Set("X-Delivery-Attempt", "1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /catering: %v", err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(reply)) != `{"success":true}` {
		t.Fatalf("POST /catering = %d %s", resp.StatusCode, reply)
	}

	resp, err = client.Get(base + "/received")
	if err != nil {
		t.Fatalf("GET /received: %v", err)
	}
	var got struct {
		Count int `json:"count"`
		Items []struct {
			IdempotencyKey string `json:"idempotencyKey"`
			Body           string `json:"body"`
		} `json:"items"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("decode /received: %v", err)
	}
	if got.Count != 1 || len(got.Items) != 1 || got.Items[0].IdempotencyKey != "e2e-1" || got.Items[0].Body != body {
		t.Fatalf("GET /received = %+v", got)
	}
	if !strings.Contains(stdout.String(), `"msg":"request"`) {
		t.Fatalf("no request line although STUB_QUIET is unset:\n%s", stdout.String())
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := os.Stat(addrFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("address file left behind after shutdown (stat: %v)", err)
	}
}

func TestRun_FailsFast(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"invalid failure rate", map[string]string{"STUB_FAILURE_RATE": "1.5"}, "STUB_FAILURE_RATE"},
		{"signing secret without whsec_", map[string]string{"STUB_SIGNING_SECRET": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "STUB_SIGNING_SECRET: secret 1: want whsec_"},
		{"unusable address", map[string]string{"STUB_ADDR": "not-an-address"}, "listen"},
		{"address file in a missing directory", map[string]string{
			"STUB_ADDR":      "127.0.0.1:0",
			"STUB_ADDR_FILE": filepath.Join(os.DevNull, "nope", "stub.addr"),
		}, "address file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The deadline only keeps a stub that wrongly started from
			// hanging the test; start-up errors come back at once.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}
