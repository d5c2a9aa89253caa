package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/events"
)

var (
	relayctlOnce sync.Once
	relayctlPath string
	relayctlErr  error
)

// buildRelayctl compiles relayctl next to the services' binaries, once.
func buildRelayctl(t *testing.T) string {
	t.Helper()
	relayctlOnce.Do(func() {
		path := filepath.Join(binDir, "relayctl")
		cmd := exec.Command("go", "build", "-o", path, ".")
		cmd.Dir = filepath.Join("..", "..", "cmd", "relayctl")
		if out, err := cmd.CombinedOutput(); err != nil {
			relayctlErr = fmt.Errorf("build relayctl: %w\n%s", err, out)
			return
		}
		relayctlPath = path
	})
	if relayctlErr != nil {
		t.Fatal(relayctlErr)
	}
	return relayctlPath
}

// relayctl runs the relayctl binary (built once) with env and args; it
// returns stdout and the exit code.
func relayctl(t *testing.T, env map[string]string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(buildRelayctl(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("relayctl %v: %v", args, err)
	}
	if code != 0 {
		t.Logf("relayctl %v: exit %d, stderr %s", args, code, stderr.String())
	}
	return stdout.String(), code
}

// getStatus asks the ingress for id's status: the code, and the answer when 200.
func getStatus(t *testing.T, addr, id string) (int, events.Registration) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/catering/registrations/" + id)
	if err != nil {
		t.Fatalf("GET status: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r events.Registration
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("status of %s: %v: %s", id, err, raw)
		}
	}
	return resp.StatusCode, r
}

// waitStatus polls GET /catering/registrations/{id}, what a client does,
// until cond holds.
func waitStatus(t *testing.T, addr, id string, timeout time.Duration, what string, cond func(events.Registration) bool) events.Registration {
	t.Helper()
	var r events.Registration
	brokertest.Eventually(t, timeout, id+": "+what, func() bool {
		code, got := getStatus(t, addr, id)
		r = got
		return code == http.StatusOK && cond(got)
	})
	return r
}

func statusIs(s string, attempts int) func(events.Registration) bool {
	return func(r events.Registration) bool { return r.Status == s && len(r.Attempts) == attempts }
}

func types(r events.Registration) string {
	var ts []string
	for _, e := range r.History {
		ts = append(ts, e.Type)
	}
	return strings.Join(ts, ",")
}

// The status of registrations delivered at once, on the third attempt, and
// dead-lettered then redriven then delivered, over HTTP and relayctl trace;
// the same after the ingress and the forwarder restart; 404 for an id
// nobody sent.
func TestRegistrationStatus_HistoryOverHTTPAndRelayctlSurvivesRestarts(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	indexPath := filepath.Join(t.TempDir(), "index.db")
	s := startStack(t, map[string]string{"INGRESS_INDEX_PATH": indexPath})
	ctl := func() map[string]string {
		return map[string]string{"AMQP_URL": brokertest.URL(), "TOPOLOGY_PREFIX": s.topo.Exchange, "RELAY_INGRESS_URL": "http://" + s.ingress.addr, "EVENTS": "on"}
	}
	post := func(key string) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, out := post(t, s.ingress.addr, seed, map[string]string{"Idempotency-Key": key})
			if resp.StatusCode == http.StatusAccepted {
				return out["id"].(string)
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST %s: %d %v", key, resp.StatusCode, out)
			}
			time.Sleep(100 * time.Millisecond) // the client's retry, as Retry-After asks
		}
	}

	// Delivered at once.
	once := post("status-once")
	r := waitStatus(t, s.ingress.addr, once, 15*time.Second, "delivered", statusIs(events.StatusDelivered, 1))
	if r.AcceptedAt == nil || r.DeliveredAt == nil || r.Client != "anonymous" || r.Attempts[0].Status != 200 || r.Attempts[0].Outcome != "delivered" {
		t.Errorf("delivered at once: %+v", r)
	}
	if got := types(r); got != "accepted,attempt,delivered" {
		t.Errorf("history %s, want accepted,attempt,delivered", got)
	}

	// Delivered on the third attempt: two 500s, then the stub recovers
	// (the tiers wait 1s, then 5s).
	setStubMode(t, s.stub.addr, `{"forceStatus":500}`)
	third := post("status-third")
	waitStatus(t, s.ingress.addr, third, 15*time.Second, "two failed attempts", statusIs(events.StatusRetrying, 2))
	setStubMode(t, s.stub.addr, `{"forceStatus":0}`)
	r = waitStatus(t, s.ingress.addr, third, 15*time.Second, "delivered on attempt 3", statusIs(events.StatusDelivered, 3))
	for i, a := range r.Attempts {
		want := []int{500, 500, 200}[i]
		if a.Attempt != i+1 || a.Status != want || a.Duplicate {
			t.Errorf("attempt %d: %+v, want status %d", i+1, a, want)
		}
	}
	if got := types(r); got != "accepted,attempt,retry_scheduled,attempt,retry_scheduled,attempt,delivered" {
		t.Errorf("history %s", got)
	}

	// Dead-lettered (422 is not retryable), redriven with relayctl, delivered.
	setStubMode(t, s.stub.addr, `{"forceStatus":422}`)
	dead := post("status-dead")
	r = waitStatus(t, s.ingress.addr, dead, 15*time.Second, "dead", statusIs(events.StatusDead, 1))
	if r.Reason != "non-retryable" || r.DeadLetteredAt == nil {
		t.Errorf("dead: %+v", r)
	}
	setStubMode(t, s.stub.addr, `{"forceStatus":0}`)
	if out, code := relayctl(t, ctl(), "dead", "redrive", dead); code != 0 {
		t.Fatalf("relayctl dead redrive: %d %s", code, out)
	}
	r = waitStatus(t, s.ingress.addr, dead, 15*time.Second, "redriven and delivered", statusIs(events.StatusDelivered, 2))
	if got := types(r); got != "accepted,attempt,dead_lettered,redriven,attempt,delivered" {
		t.Errorf("history %s", got)
	}
	if r.Redrives != 1 || r.Attempts[1].Redrive != 1 || r.Attempts[1].Attempt != 1 {
		t.Errorf("after the redrive: %+v", r.Attempts)
	}

	// relayctl trace says the same as the ingress.
	want := map[string]events.Registration{}
	for _, id := range []string{once, third, dead} {
		_, want[id] = getStatus(t, s.ingress.addr, id)
		out, code := relayctl(t, ctl(), "trace", id, "--json")
		var got events.Registration
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Status != events.StatusDelivered || len(got.History) != len(want[id].History) {
			t.Errorf("relayctl trace %s --json: exit %d, %s", id, code, out)
		}
	}
	out, code := relayctl(t, ctl(), "trace", dead)
	for _, s := range []string{"DELIVERED", "dead_lettered", "redriven", "attempt 1 (redrive 1)", "HTTP 422"} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("relayctl trace %s lacks %q:\n%s", dead, s, out)
		}
	}
	t.Logf("relayctl trace %s:\n%s", dead, out)

	// Unknown.
	if code, _ := getStatus(t, s.ingress.addr, "never-sent"); code != http.StatusNotFound {
		t.Errorf("unknown id: %d, want 404", code)
	}
	if _, code := relayctl(t, ctl(), "trace", "never-sent"); code != 1 {
		t.Errorf("relayctl trace of an unknown id: exit %d, want 1", code)
	}

	// Restarts: the same answers from the index on disk, and new events
	// still arrive.
	for _, p := range []*process{s.ingress, s.forwarder} {
		if err := p.stop(t, 20*time.Second); err != nil {
			t.Errorf("%s exit: %v", p.name, err)
		}
	}
	env := func() map[string]string {
		return map[string]string{"AMQP_URL": brokertest.URL(), "TOPOLOGY_PREFIX": s.topo.Exchange, "INGRESS_INDEX_PATH": indexPath, "EVENTS": "on"}
	}
	s.ingress = start(t, "ingress", env(), "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	for id, w := range want {
		code, got := getStatus(t, s.ingress.addr, id)
		if code != http.StatusOK || got.Status != w.Status || len(got.History) != len(w.History) || len(got.Attempts) != len(w.Attempts) {
			t.Errorf("%s after the ingress restarted: %d %+v, want %+v", id, code, got, w)
		}
	}
	after := post("status-after-restart") // stored while no forwarder runs
	waitStatus(t, s.ingress.addr, after, 15*time.Second, "accepted", statusIs(events.StatusAccepted, 0))
	fenv := env()
	fenv["CATERING_SERVICE_EP"] = "http://" + s.stub.addr + "/catering"
	s.forwarder = start(t, "forwarder", fenv, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	waitStatus(t, s.ingress.addr, after, 15*time.Second, "delivered after the forwarder restarted", statusIs(events.StatusDelivered, 1))
	for _, p := range []*process{s.ingress, s.forwarder, s.stub} {
		if err := p.stop(t, 20*time.Second); err != nil {
			t.Errorf("%s exit: %v", p.name, err)
		}
	}
}

// EVENTS=off: no stream is declared, registrations are delivered as ever,
// and nobody answers for their status.
func TestRegistrationStatus_EventsOffDeclaresNoStreamAndServesNoStatus(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, map[string]string{"EVENTS": "off"})
	out := postUntilAccepted(t, s.ingress.addr, seed)
	id, _ := out["id"].(string)
	brokertest.Eventually(t, 15*time.Second, "the stub to receive the registration", func() bool {
		return getReceived(t, s.stub.addr).Count > 0
	})
	if code, _ := getStatus(t, s.ingress.addr, id); code != http.StatusNotFound {
		t.Errorf("GET status with EVENTS=off: %d, want 404", code)
	}
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive(s.topo.Exchange+".events", true, false, false, false, nil); err == nil {
		t.Errorf("stream %s.events exists with EVENTS=off", s.topo.Exchange)
	}
}
