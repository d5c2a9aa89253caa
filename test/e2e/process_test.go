package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binaries built once for the whole test run.
var binDir string

// afterAll runs once all tests are done (shared fixtures' tear-down).
var afterAll []func()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := buildAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	for _, f := range afterAll {
		f()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAll compiles each service from its own module directory, which works
// with and without the workspace.
func buildAll(dir string) error {
	for _, svc := range []string{"ingress", "forwarder", "catering-stub"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, svc), ".")
		cmd.Dir = filepath.Join("..", "..", "services", svc)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", svc, err, out)
		}
	}
	return nil
}

// process is one running service binary.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	addr string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

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

// start runs binary name with env; when addrVar is set, the process is told
// to listen on a free port (unless env sets addrVar already) and to write the
// address to a file, and start waits for it.
func start(t *testing.T, name string, env map[string]string, addrVar, addrFileVar string) *process {
	t.Helper()
	p := &process{name: name, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name))
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LOG_FORMAT=json"}
	addrFile := ""
	if addrVar != "" {
		addrFile = filepath.Join(t.TempDir(), name+".addr")
		if env[addrVar] == "" {
			env[addrVar] = "127.0.0.1:0"
		}
		env[addrFileVar] = addrFile
	}
	// Operational ports on a free port, unless the test names one: several
	// ingresses run at once, and beside a developer's make run.
	if name == "ingress" && env["INGRESS_ADMIN_ADDR"] == "" {
		env["INGRESS_ADMIN_ADDR"] = "127.0.0.1:0"
	}
	// An index file of its own, unless the test names one (to restart an
	// ingress on it): the default is one per prefix, locked by the first
	// ingress that opens it, and events are on by default.
	if name == "ingress" && env["INGRESS_INDEX_PATH"] == "" {
		env["INGRESS_INDEX_PATH"] = filepath.Join(t.TempDir(), "ingress-index.db")
	}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // no-op when it has exited
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.log.String())
		}
	})
	if addrFile != "" {
		p.addr = p.waitAddr(t, addrFile)
	}
	return p
}

// waitAddr waits for the process to write its listening address to file,
// and returns it.
func (p *process) waitAddr(t *testing.T, file string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening: %v\n%s", p.name, p.err, p.log.String())
		case <-time.After(20 * time.Millisecond): // the address file has no event to wait on
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen within 15s:\n%s", p.name, p.log.String())
		}
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (p *process) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and returns the exit error (nil for exit code 0).
func (p *process) stop(t *testing.T, timeout time.Duration) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New(p.name + " did not stop after SIGTERM")
	}
}

// received is the stub's GET /received answer.
type received struct {
	Count      int `json:"count"`
	Deliveries int `json:"deliveries"`
	Items      []struct {
		IdempotencyKey string `json:"idempotencyKey"`
		Attempt        int    `json:"attempt"`
		Deliveries     int    `json:"deliveries"`
		Body           string `json:"body"`
		ContentType    string `json:"contentType"`
	} `json:"items"`
}

func getReceived(t *testing.T, stubAddr string) received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+stubAddr+"/received", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /received: %v", err)
	}
	defer resp.Body.Close()
	var r received
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode /received: %v", err)
	}
	return r
}
