//go:build chaos

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

// The chaos suite (make test-chaos) runs the real binaries against a private
// RabbitMQ node and breaks things on purpose. The waits between chaos events
// below are the schedule of the experiment, not synchronisation.

// 1. Accepted registrations survive a flaky backend, forwarder crashes, a
// broker crash and an ingress restart: lost = 0.
func TestChaos_NothingLostUnderFaults(t *testing.T) {
	b := chaosBroker(t)
	cfg := fastRetries()
	// 25% of attempts count as failures (500s, timeouts); ten attempts make
	// a dead letter from bad luck alone a one-in-a-million event.
	cfg.MaxAttempts = 10
	topo := chaosTopology(t, b, cfg)
	backend := newChaosBackend(t, func(string, []byte) answer {
		switch r := rand.Float64(); {
		case r < 0.20:
			return answerFail
		case r < 0.25:
			return answerTimeout
		case r < 0.30:
			return answerReset
		}
		return answerOK
	})
	env := envFor(b, topo, topologyEnv(cfg))
	fwdEnv := clone(env)
	fwdEnv["CATERING_SERVICE_EP"] = backend.URL + "/catering"
	fwdEnv["DELIVERY_TIMEOUT"] = "1s"
	fwdEnv["BREAKER_PROBE_INTERVAL"] = "250ms"
	fwdEnv["BREAKER_PROBE_MAX_INTERVAL"] = "1s"
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ingEnv := clone(env)
	ingEnv["INGRESS_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	ingEnv["PUBLISH_TIMEOUT"] = "2s"

	fwdA := start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	fwdB := start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	ing := start(t, "ingress", clone(ingEnv), "INGRESS_ADDR", "INGRESS_ADDR_FILE")

	const n = 2000
	load := newLoader(ing.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	loadErr := make(chan error, 1)
	go func() {
		loadErr <- load.run(ctx, "chaos1", n, 8, 80, func(i int) []byte { return registration(fmt.Sprint("p1-", i)) })
	}()

	var mu sync.Mutex // guards fwdB and ing, replaced by restarts
	events := []struct {
		after time.Duration
		what  string
		do    func()
	}{
		{2 * time.Second, "kill -9 forwarder B (1/3)", func() {
			fwdB.kill(t)
			fwdB = start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
		}},
		{3 * time.Second, "kill -9 forwarder B (2/3)", func() {
			fwdB.kill(t)
			fwdB = start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
		}},
		{2 * time.Second, "kill -9 the broker node and restart it", func() {
			if err := b.kill9(); err != nil {
				t.Fatal(err)
			}
			if err := b.start(); err != nil {
				t.Fatal(err)
			}
		}},
		{3 * time.Second, "restart the ingress (SIGTERM)", func() {
			mustStop(t, ing)
			ing = start(t, "ingress", clone(ingEnv), "INGRESS_ADDR", "INGRESS_ADDR_FILE")
		}},
		{2 * time.Second, "kill -9 forwarder B (3/3)", func() {
			fwdB.kill(t)
			fwdB = start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
		}},
	}
	for _, e := range events {
		time.Sleep(e.after)
		fmt.Printf("chaos 1: %s (accepted so far: %d)\n", e.what, len(load.acceptedIDs()))
		mu.Lock()
		e.do()
		mu.Unlock()
	}
	if err := <-loadErr; err != nil {
		t.Fatalf("load: %v", err)
	}
	accepted := load.acceptedIDs()
	if len(accepted) != n {
		t.Fatalf("%d registrations accepted, want %d", len(accepted), n)
	}
	tl := backend.waitDelivered(t, accepted, 2*time.Minute)
	report(t, "1 (faults)", tl, fmt.Sprintf("client_retries=%d dead_letters=%d", load.retries.Load(), depth(t, b, topo.DeadQueue)))
	if tl.lost != 0 {
		t.Errorf("lost = %d, want 0", tl.lost)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range []*process{ing, fwdA, fwdB} {
		mustStop(t, p)
	}
}

// 2. A long backend outage under a steady trickle: delivery pauses once and
// resumes once, nothing is dead-lettered, and all arrives soon after.
func TestChaos_BackendOutagePausesAndResumes(t *testing.T) {
	outage := 60 * time.Second
	if v := os.Getenv("CHAOS_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHAOS_OUTAGE: %v", err)
		}
		outage = d
	}
	b := chaosBroker(t)
	cfg := fastRetries()
	topo := chaosTopology(t, b, cfg)
	var down sync.Mutex
	isDown := true
	backend := newChaosBackend(t, func(string, []byte) answer {
		down.Lock()
		defer down.Unlock()
		if isDown {
			return answerReset
		}
		return answerOK
	})
	env := envFor(b, topo, topologyEnv(cfg))
	fwdEnv := clone(env)
	fwdEnv["CATERING_SERVICE_EP"] = backend.URL + "/catering" // default breaker settings
	fwd := start(t, "forwarder", fwdEnv, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	ing := start(t, "ingress", clone(env), "INGRESS_ADDR", "INGRESS_ADDR_FILE")

	load := newLoader(ing.addr)
	ctx, cancel := context.WithTimeout(context.Background(), outage+time.Minute)
	defer cancel()
	const rate = 5.0
	n := int(outage.Seconds() * rate)
	if err := load.run(ctx, "chaos2", n, 2, rate, func(i int) []byte { return registration(fmt.Sprint("p2-", i)) }); err != nil {
		t.Fatalf("load: %v", err)
	}
	if dead := depth(t, b, topo.DeadQueue); dead != 0 {
		t.Errorf("%d dead letters during the outage, want 0", dead)
	}
	down.Lock()
	isDown = false
	down.Unlock()
	back := time.Now()

	accepted := load.acceptedIDs()
	tl := backend.waitDelivered(t, accepted, 30*time.Second)
	var last time.Time
	backend.mu.Lock()
	for _, id := range accepted {
		if at := backend.firstAt[id]; at.After(last) {
			last = at
		}
	}
	backend.mu.Unlock()
	drained := last.Sub(back)
	report(t, "2 (outage "+outage.String()+")", tl, fmt.Sprintf("all_delivered_after_return=%s dead_letters=%d", drained.Round(time.Millisecond), depth(t, b, topo.DeadQueue)))
	if tl.lost != 0 || drained > 15*time.Second {
		t.Errorf("lost %d, last delivery %s after the backend returned; want 0 and at most 15s", tl.lost, drained)
	}
	if dead := depth(t, b, topo.DeadQueue); dead != 0 {
		t.Errorf("%d dead letters, want 0", dead)
	}
	logs := fwd.log.String()
	if p, r := contains(logs, "pausing delivery"), contains(logs, "backend available again; resuming"); p != 1 || r != 1 {
		t.Errorf("forwarder log shows %d pauses and %d resumes, want 1 and 1", p, r)
	}
	if c := contains(logs, `"outcome":"retry"`) + contains(logs, `"outcome":"dead-lettered"`); c != 0 {
		t.Errorf("the outage spent %d counted attempts, want 0", c)
	}
	mustStop(t, ing)
	mustStop(t, fwd)
}

// 3. A poison message among healthy ones is dead-lettered alone, after
// exactly MAX_DELIVERY_ATTEMPTS, and the breaker never opens.
func TestChaos_PoisonMessageAlone(t *testing.T) {
	b := chaosBroker(t)
	cfg := fastRetries()
	topo := chaosTopology(t, b, cfg)
	backend := newChaosBackend(t, func(_ string, body []byte) answer {
		if bytes.Contains(body, []byte(`"POISON"`)) {
			return answerFail
		}
		return answerOK
	})
	env := envFor(b, topo, topologyEnv(cfg))
	fwdEnv := clone(env)
	fwdEnv["CATERING_SERVICE_EP"] = backend.URL + "/catering"
	fwd := start(t, "forwarder", fwdEnv, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	ing := start(t, "ingress", clone(env), "INGRESS_ADDR", "INGRESS_ADDR_FILE")

	load := newLoader(ing.addr)
	const n = 300
	const poisonAt = 17
	err := load.run(context.Background(), "chaos3", n, 4, 200, func(i int) []byte {
		if i == poisonAt {
			return registration("POISON")
		}
		return registration(fmt.Sprint("p3-", i))
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	poison := fmt.Sprintf("chaos3-%05d", poisonAt)
	var healthy []string
	for _, id := range load.acceptedIDs() {
		if id != poison {
			healthy = append(healthy, id)
		}
	}
	tl := backend.waitDelivered(t, healthy, time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for depth(t, b, topo.DeadQueue) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	attempts := backend.requestsFor(poison)
	report(t, "3 (poison)", tl, fmt.Sprintf("poison_attempts=%d dead_letters=%d", len(attempts), depth(t, b, topo.DeadQueue)))
	if d := depth(t, b, topo.DeadQueue); d != 1 {
		t.Errorf("%d dead letters, want exactly the poison one", d)
	}
	if len(attempts) != cfg.MaxAttempts {
		t.Errorf("poison tried %d times (%v), want exactly %d", len(attempts), attempts, cfg.MaxAttempts)
	}
	if tl.lost != 0 {
		t.Errorf("%d healthy registrations lost", tl.lost)
	}
	if c := contains(fwd.log.String(), "pausing delivery"); c != 0 {
		t.Errorf("the breaker opened %d times for one poison message", c)
	}
	mustStop(t, ing)
	mustStop(t, fwd)
}

// 4. A broker restart with messages waiting in a retry tier and in the main
// queue: all of them are delivered after it.
func TestChaos_BrokerRestartKeepsWaitingMessages(t *testing.T) {
	b := chaosBroker(t)
	cfg := fastRetries()
	cfg.RetryInitial = 25 * time.Second // long enough to outlive the restart in the tier
	cfg.RetryMax = 25 * time.Second
	topo := chaosTopology(t, b, cfg)
	var mu sync.Mutex
	seen := map[string]bool{}
	backend := newChaosBackend(t, func(key string, _ []byte) answer {
		mu.Lock()
		defer mu.Unlock()
		// The first batch fails its first attempt, into the retry tier; the
		// second waits in the main queue.
		if strings.HasPrefix(key, "chaos4a") && !seen[key] {
			seen[key] = true
			return answerFail
		}
		return answerOK
	})
	env := envFor(b, topo, topologyEnv(cfg))
	fwdEnv := clone(env)
	fwdEnv["CATERING_SERVICE_EP"] = backend.URL + "/catering"
	// A backend failing every first attempt would rightly open the breaker
	// and pause delivery; this scenario wants the messages parked in a tier.
	fwdEnv["BREAKER_FAILURE_THRESHOLD"] = "1000000"
	fwdEnv["BREAKER_FAILURE_RATE"] = "0"
	ing := start(t, "ingress", clone(env), "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	fwd := start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")

	load := newLoader(ing.addr)
	body := func(i int) []byte { return registration(fmt.Sprint("p4-", i)) }
	if err := load.run(context.Background(), "chaos4a", 250, 4, 0, body); err != nil {
		t.Fatalf("load: %v", err)
	}
	tier := topo.Tiers()[0].Queue
	deadline := time.Now().Add(20 * time.Second)
	for depth(t, b, tier) < 250 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // queue depth has no event to wait on
	}
	mustStop(t, fwd)
	if err := load.run(context.Background(), "chaos4b", 250, 4, 0, body); err != nil {
		t.Fatalf("load: %v", err)
	}
	inTier, inMain := depth(t, b, tier), depth(t, b, topo.Queue)
	fmt.Printf("chaos 4: before the restart: %d in %s, %d in %s\n", inTier, tier, inMain, topo.Queue)
	if inTier != 250 || inMain != 250 {
		t.Errorf("before the restart %d in the tier and %d in the main queue, want 250 and 250", inTier, inMain)
	}
	// A clean restart. (After a kill -9, RabbitMQ 3.10.8 leaves a quorum
	// queue with at-least-once dead-lettering that held messages stranded:
	// they neither expire out of it nor does it confirm new publishes, until
	// the node restarts again. Nothing is lost, but nothing moves; see
	// README, Operations. Scenario 1 kill -9s the node with tiers that are
	// nearly empty.)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	fwd = start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	accepted := load.acceptedIDs()
	tl := backend.waitDelivered(t, accepted, 90*time.Second)
	report(t, "4 (broker restart)", tl, fmt.Sprintf("waiting_in_tier=%d waiting_in_main=%d", inTier, inMain))
	if tl.lost != 0 || tl.accepted != 500 {
		t.Errorf("accepted %d, lost %d; want 500 and 0", tl.accepted, tl.lost)
	}
	mustStop(t, ing)
	mustStop(t, fwd)
}

// 5. SIGTERM to each service under load: exit code 0, nothing lost, and
// nothing in flight abandoned (which would come back as a duplicate).
func TestChaos_SIGTERMUnderLoad(t *testing.T) {
	b := chaosBroker(t)
	cfg := fastRetries()
	topo := chaosTopology(t, b, cfg)
	backend := newChaosBackend(t, func(string, []byte) answer {
		time.Sleep(20 * time.Millisecond)
		return answerOK
	})
	env := envFor(b, topo, topologyEnv(cfg))
	fwdEnv := clone(env)
	fwdEnv["CATERING_SERVICE_EP"] = backend.URL + "/catering"
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ingEnv := clone(env)
	ingEnv["INGRESS_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	fwd := start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	ing := start(t, "ingress", clone(ingEnv), "INGRESS_ADDR", "INGRESS_ADDR_FILE")

	load := newLoader(ing.addr)
	loadErr := make(chan error, 1)
	go func() {
		loadErr <- load.run(context.Background(), "chaos5", 1500, 16, 300, func(i int) []byte { return registration(fmt.Sprint("p5-", i)) })
	}()
	time.Sleep(2 * time.Second)
	fmt.Printf("chaos 5: SIGTERM forwarder (accepted so far: %d)\n", len(load.acceptedIDs()))
	mustStop(t, fwd)
	time.Sleep(time.Second)
	fmt.Printf("chaos 5: SIGTERM ingress (accepted so far: %d)\n", len(load.acceptedIDs()))
	mustStop(t, ing)
	ing = start(t, "ingress", clone(ingEnv), "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	fwd = start(t, "forwarder", clone(fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	if err := <-loadErr; err != nil {
		t.Fatalf("load: %v", err)
	}
	tl := backend.waitDelivered(t, load.acceptedIDs(), time.Minute)
	report(t, "5 (SIGTERM)", tl, fmt.Sprintf("client_retries=%d", load.retries.Load()))
	if tl.lost != 0 || tl.duplicates != 0 {
		t.Errorf("lost %d, duplicates %d; want 0 and 0 after graceful shutdowns", tl.lost, tl.duplicates)
	}
	mustStop(t, ing)
	mustStop(t, fwd)
}

// 6. A broker resource alarm (memory) blocks publishing: the ingress answers
// 503 at once and reports not ready instead of piling up waiting requests;
// when the alarm clears it accepts again.
func TestChaos_ResourceAlarmBlocksIngress(t *testing.T) {
	b, topo, ing, load := ingressAccepting(t, "2s", "alarm-before")

	b.ctl(t, "set_vm_memory_high_watermark", "0.00001")
	t.Cleanup(func() { b.ctl(t, "set_vm_memory_high_watermark", "0.4") })
	// RabbitMQ blocks a connection when it next publishes: the first request
	// waits for a confirm that does not come (PUBLISH_TIMEOUT), and is not
	// accepted.
	resp, out := post(t, ing.addr, registration("a2"), map[string]string{"Idempotency-Key": "alarm-first"})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("first POST during the alarm: %d %v, want 503", resp.StatusCode, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for readyz(t, ing.addr) != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still ready 20s after the broker blocked the connection")
		}
		time.Sleep(50 * time.Millisecond) // readiness has no event to wait on from here
	}
	// From then on requests are refused at once, holding no goroutine.
	started := time.Now()
	resp, out = post(t, ing.addr, registration("a3"), map[string]string{"Idempotency-Key": "alarm-during"})
	took := time.Since(started)
	if resp.StatusCode != http.StatusServiceUnavailable || took > 500*time.Millisecond {
		t.Errorf("POST while blocked: %d %v after %s, want a prompt 503", resp.StatusCode, out, took)
	}
	fmt.Printf("chaos 6: memory alarm: /readyz 503 (blocked), POST answered %d in %s\n", resp.StatusCode, took.Round(time.Millisecond))

	b.ctl(t, "set_vm_memory_high_watermark", "0.4")
	if err := load.send(context.Background(), "alarm-after", registration("a3")); err != nil {
		t.Fatalf("after the alarm cleared: %v", err)
	}
	if readyz(t, ing.addr) != http.StatusOK {
		t.Error("/readyz not ready after the alarm cleared")
	}
	// The blocked first publish may have been stored once the alarm cleared
	// (the client was told 503 and would retry with its key): 2 or 3.
	if d := depth(t, b, topo.Queue); d < 2 || d > 3 {
		t.Errorf("main queue holds %d, want the 2 accepted registrations (+1 possible duplicate)", d)
	}
	mustStop(t, ing)
}

// 6b. A publish that stays unconfirmed for PUBLISH_TIMEOUT while no
// resource alarm blocks the connection gets its 503, and the ingress
// replaces that channel with a new one on the same connection, keeping its
// session: RabbitMQ 3.10 can stop confirming on a channel opened while a
// node was down, and keeps failing it after the node returns, while a node
// that is only slow must not cost a new session (whose topology
// declaration would wait for it). The main queue's Ra server is suspended
// (rabbitmqctl eval sys:suspend) to hold back one confirm without an alarm.
func TestChaos_UnconfirmedPublishReplacesItsChannel(t *testing.T) {
	b, topo, ing, load := ingressAccepting(t, "1s", "unconfirmed-before")
	sessions := func() int { return strings.Count(ing.log.String(), `"msg":"ready to accept registrations"`) }
	before := sessions()

	// The quorum queue's Ra server, by its registered name.
	raServer := fmt.Sprintf(`{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"%s">>)), {Name, _} = amqqueue:get_pid(Q), Name`, topo.Queue)
	b.ctl(t, "eval", raServer+", sys:suspend(Name).")
	suspended := true
	resume := func() {
		if suspended {
			b.ctl(t, "eval", raServer+", sys:resume(Name).")
			suspended = false
		}
	}
	t.Cleanup(resume)
	resp, out := post(t, ing.addr, registration("u2"), map[string]string{"Idempotency-Key": "unconfirmed-during"})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST while the queue cannot confirm: %d %v, want 503", resp.StatusCode, out)
	}
	resume()

	waitLog(t, ing, "replaced by a new one", []string{`"publishes":"registrations"`}, 20*time.Second)
	if err := load.send(context.Background(), "unconfirmed-after", registration("u3")); err != nil {
		t.Fatalf("after the channel was replaced: %v", err)
	}
	if got := sessions(); got != before {
		t.Errorf("%d sessions after the replacement, want %d: the channel alone is replaced, the connection and its session stay", got, before)
	}
	// The held publish is stored once the queue resumes (its client was
	// told 503 and would retry with its key): 2 or 3.
	if d := depth(t, b, topo.Queue); d < 2 || d > 3 {
		t.Errorf("main queue holds %d, want the 2 accepted registrations (+1 possible duplicate)", d)
	}
	fmt.Printf("chaos 6b: a confirm held back for PUBLISH_TIMEOUT without an alarm: 503, its channel replaced, sessions %d → %d\n", before, sessions())
	mustStop(t, ing)
}

// ingressAccepting starts an ingress alone on the suite's node, with
// PUBLISH_TIMEOUT publishTimeout, and has it accept one registration
// (Idempotency-Key first) before the scenario's fault.
func ingressAccepting(t *testing.T, publishTimeout, first string) (*privateBroker, *topology.Topology, *process, *loader) {
	t.Helper()
	b := chaosBroker(t)
	topo := chaosTopology(t, b, fastRetries())
	env := envFor(b, topo, topologyEnv(fastRetries()))
	env["PUBLISH_TIMEOUT"] = publishTimeout
	ing := start(t, "ingress", env, "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	load := newLoader(ing.addr)
	if err := load.send(context.Background(), first, registration(first)); err != nil {
		t.Fatal(err)
	}
	return b, topo, ing, load
}

func readyz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// 7. A resource alarm blocks the forwarder's publishing (retry and
// dead-letter moves) but not its deliveries: it consumes on a connection that
// never publishes, so successful deliveries are acked while the alarm lasts,
// and the failed message waits, stored, until it clears. With EVENTS=off: a
// delivery's ack waits for its events otherwise (7b).
func TestChaos_DeliveryGoesOnWhilePublishingIsBlocked(t *testing.T) {
	b := chaosBroker(t)
	cfg := fastRetries()
	cfg.Events = false
	topo := chaosTopology(t, b, cfg)
	backend := newChaosBackend(t, func(key string, _ []byte) answer {
		if strings.HasPrefix(key, "blocked-fail") {
			return answerFail // its retry is a publish, which the alarm blocks
		}
		return answerOK
	})
	// More failing messages than workers: their moves must not hold the
	// workers, or the deliveries after them would stop.
	const n, failing = 40, 4
	var ids []string
	for i := range failing {
		ids = append(ids, fmt.Sprint("blocked-fail-", i))
	}
	for i := range n {
		ids = append(ids, fmt.Sprint("blocked-ok-", i))
	}
	storeDirectly(t, b, topo, ids)

	b.ctl(t, "set_vm_memory_high_watermark", "0.00001")
	t.Cleanup(func() { b.ctl(t, "set_vm_memory_high_watermark", "0.4") })
	env := envFor(b, topo, topologyEnv(cfg))
	env["CATERING_SERVICE_EP"] = backend.URL
	env["FORWARDER_CONCURRENCY"], env["FORWARDER_PREFETCH"], env["BREAKER_HOLD_MAX"] = "2", "8", "5m"
	env["PUBLISH_TIMEOUT"] = "2s"
	fwd := start(t, "forwarder", env, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")

	okIDs := ids[failing:]
	tl := backend.waitDelivered(t, okIDs, 60*time.Second)
	for _, id := range ids[:failing] {
		if got := backend.requestsFor(id); len(got) == 0 {
			t.Errorf("%s was never tried", id)
		}
	}
	if !strings.Contains(fwd.log.String(), "broker blocked the publishing connection") {
		t.Errorf("the forwarder never saw its publishing connection blocked:\n%s", fwd.log.String())
	}
	// Stopped while the alarm lasts: what it acked is gone from the queue;
	// only the failed messages, whose retries could not be published, are
	// back in it.
	mustStop(t, fwd)
	if d := depth(t, b, topo.Queue); d != failing {
		t.Errorf("main queue holds %d after the deliveries, want %d (the failed messages): acks did not reach the broker, or a message was lost", d, failing)
	}
	report(t, "7 (publishing blocked)", tl, fmt.Sprintf("acked=%d during the alarm", n))

	b.ctl(t, "set_vm_memory_high_watermark", "0.4")
}

// storeDirectly declares topo on b and stores a registration for each id
// in its main queue, with confirms, as the ingress would.
func storeDirectly(t *testing.T, b *privateBroker, topo *topology.Topology, ids []string) {
	t.Helper()
	conn, err := amqp.Dial(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := topo.Declare(conn); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	defer pub.Detach()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pub.Publish(ctx, topo.Exchange, topo.Queue, envelope.New(id, registration(id), time.Now()))
		cancel()
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
}

// 7b. With events on (the default), a delivered message is acked only once
// the broker confirmed its delivered event, and a resource alarm blocks that
// publish too: delivery goes on only until the prefetch is full of delivered
// messages awaiting their events, and none of them is acked meanwhile. Once
// the alarm clears, the events are confirmed and the messages acked: every
// message was delivered, once, and the queue is empty.
func TestChaos_EventsHoldAcksWhilePublishingIsBlocked(t *testing.T) {
	b := chaosBroker(t)
	cfg := fastRetries()
	topo := chaosTopology(t, b, cfg)
	backend := newChaosBackend(t, func(string, []byte) answer { return answerOK })
	const n, prefetch = 20, 8
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprint("blocked-events-", i))
	}
	storeDirectly(t, b, topo, ids)

	b.ctl(t, "set_vm_memory_high_watermark", "0.00001")
	t.Cleanup(func() { b.ctl(t, "set_vm_memory_high_watermark", "0.4") })
	env := envFor(b, topo, topologyEnv(cfg))
	env["CATERING_SERVICE_EP"] = backend.URL
	env["FORWARDER_CONCURRENCY"], env["FORWARDER_PREFETCH"] = "2", strconv.Itoa(prefetch)
	fwd := start(t, "forwarder", env, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")

	// The prefetch fills with delivered messages whose events cannot be
	// published. Had any been acked before its event's confirm, the
	// forwarder would have taken the next ones, and all 20 would be here by
	// the time the 8th is.
	waitLog(t, fwd, "broker blocked the publishing connection", []string{""}, 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for backend.tally(ids).delivered < prefetch {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of the first %d messages reached the backend during the alarm", backend.tally(ids).delivered, prefetch)
		}
		time.Sleep(50 * time.Millisecond) // the backend's maps have no event to wait on
	}
	if got := backend.tally(ids).delivered; got > prefetch {
		t.Errorf("%d messages reached the backend while no event could be published, want at most the prefetch, %d: acks did not wait for the events", got, prefetch)
	}
	if d := depth(t, b, topo.Queue); d != n-prefetch {
		t.Errorf("main queue has %d ready during the alarm, want %d: all but the prefetch, none acked", d, n-prefetch)
	}

	b.ctl(t, "set_vm_memory_high_watermark", "0.4")
	tl := backend.waitDelivered(t, ids, 60*time.Second)
	if tl.duplicates != 0 {
		t.Errorf("%d duplicates: a held delivery was made again", tl.duplicates)
	}
	mustStop(t, fwd)
	if d := depth(t, b, topo.Queue); d != 0 {
		t.Errorf("main queue holds %d after the alarm cleared and everything was delivered, want 0: acks never followed the events", d)
	}
	report(t, "7b (publishing blocked, events on)", tl, fmt.Sprintf("prefetch=%d", prefetch))
}
