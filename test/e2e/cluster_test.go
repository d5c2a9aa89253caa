//go:build cluster

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/deadletter"
)

// The cluster suite (make test-cluster) runs the real binaries against a
// private three-node RabbitMQ cluster, every service's AMQP_URL listing all
// three nodes, and takes nodes away under load: the main queue's leader
// crashes, the nodes restart one after the other, a node hangs, and a node
// crashes while messages wait in a retry tier and in the dead-letter queue.
// The waits between chaos events below are the schedule of the experiment,
// not synchronisation.
//
// Every scenario's backend fails 20 % of the requests with a 500, but never
// one id more than twice (flakyBackend): with MAX_DELIVERY_ATTEMPTS 4 no
// dead letter can come from the backend, so every dead letter would be the
// cluster's doing, and every scenario expects none.
//
// Each scenario prints one line: the tally (accepted, delivered, lost,
// duplicates, dead letters), what the clients saw (non-202 answers, the
// longest time each ingress answered nothing but non-202, publishes the
// broker refused, the longest time without any 202), the longest gap
// between deliveries at the backend, and what happened to the services'
// connections. CLUSTER_LOG_DIR=dir keeps every service's log and every
// node's log there.

const (
	// clusterRate is the clients' steady rate, registrations per second.
	clusterRate = 200.0
	// clusterWorkers is how many requests may be under way at once: enough
	// that requests held by an ingress whose node hangs (up to
	// PUBLISH_TIMEOUT, 5 s) do not slow the rate.
	clusterWorkers = 64
	// maxFailuresPerID: see flakyBackend; below fastRetries' MaxAttempts.
	maxFailuresPerID = 2
)

func clusterBody(prefix string) func(int) []byte {
	return func(i int) []byte { return registration(fmt.Sprint(prefix, "-", i)) }
}

// 1. kill -9 of the node that leads the main queue while registrations
// arrive at 200/s: the two other nodes elect a new leader, the services on
// the dead node move to another, nothing accepted is lost and nothing is
// dead-lettered. The load lasts 40 s rather than 60 to keep the suite short;
// the kill falls 10 s in, so 30 s of it run on two nodes.
func TestCluster_LeaderLossLosesNothing(t *testing.T) {
	c := testCluster(t)
	cfg := fastRetries()
	s := newClusterStack(t, c, cfg, flakyBackend(0.2, maxFailuresPerID), nil)
	load := newLoader(s.ingressAddrs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const seconds = 40
	loadErr := make(chan error, 1)
	go func() {
		loadErr <- load.run(ctx, "cl1", seconds*int(clusterRate), clusterWorkers, clusterRate, clusterBody("p1"))
	}()

	time.Sleep(10 * time.Second)
	leader := c.home(t, s.topo.Queue)
	fmt.Printf("cluster 1: kill -9 %s, leader of %s (accepted so far: %d)\n", leader.node, s.topo.Queue, len(load.acceptedIDs()))
	killed := time.Now()
	if err := c.kill9(leader); err != nil {
		t.Fatal(err)
	}
	moves := s.waitMoved(leader, killed, time.Minute)
	// The load ends 30 s after the kill. If it has not 45 s later while the
	// broker nacks the services' publishes, the 3.10.8 defect (see
	// deliverAll) refuses every publish of a channel opened while the
	// killed leader was down, until it is back: restart it, as systemd or
	// Kubernetes would, and let the load finish.
	var loadNote string
	var err error
	select {
	case err = <-loadErr:
	case <-time.After(time.Until(killed.Add((seconds-10)*time.Second + 45*time.Second))):
		if n := s.nacked(""); n > 0 && c.isDown(leader) {
			loadNote = fmt.Sprintf("rabbitmq 3.10.8 defect: the load stalled, %d publishes nacked while %s was down; restarted it", n, c.short(leader))
			fmt.Printf("cluster: %s\n", loadNote)
			t.Log(loadNote)
			if err := c.restart(leader); err != nil {
				t.Fatal(err)
			}
		}
		err = <-loadErr
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	accepted := load.acceptedIDs()
	newLeader := c.home(t, s.topo.Queue)
	// On the two nodes left, unless the 3.10.8 defect strands retries (see
	// deliverAll): then once the killed node is back.
	tl, defect := s.deliverAll(t, accepted, leader, 2*time.Minute)

	// Back to three nodes for the next scenario.
	if err := c.restart(leader); err != nil { // unless it is back already
		t.Fatal(err)
	}
	c.waitHealthy(t, s.topo.Exchange, 2*time.Minute)
	dead := s.deadLetters(t)
	s.clusterReport(t, "1 (leader loss)", tl, dead, load, accepted,
		fmt.Sprintf("killed=%s (leader) new_leader=%s reconnected: %s%s%s", c.short(leader), c.short(newLeader), s.describeMoves(moves), suffix(loadNote), suffix(defect)))
	if tl.lost != 0 {
		t.Errorf("lost = %d, want 0", tl.lost)
	}
	if dead != 0 {
		t.Errorf("%d dead letters, want 0", dead)
	}
	s.checkMoved(t, leader, moves, 30*time.Second)
	s.waitReady(t, 30*time.Second)
	s.stopAll(t)
}

// 2. A rolling restart under 200 registrations/s: each node in turn is
// stopped (rabbitmqctl stop: the whole Erlang VM, as an upgrade does) once
// no quorum queue needs it for its majority, started again, and the next
// waits until it has rejoined and caught up. Every service on a stopped node
// reconnects to another by itself; nothing is lost or dead-lettered.
func TestCluster_RollingRestartLosesNothing(t *testing.T) {
	c := testCluster(t)
	cfg := fastRetries()
	s := newClusterStack(t, c, cfg, flakyBackend(0.2, maxFailuresPerID), nil)
	load := newLoader(s.ingressAddrs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	loadErr := make(chan error, 1)
	go func() {
		loadErr <- load.run(ctx, "cl2", 1<<30, clusterWorkers, clusterRate, clusterBody("p2"))
	}()

	time.Sleep(5 * time.Second)
	var steps []string
	for _, n := range c.nodes {
		// What a rolling restart checks before each step: every node in the
		// cluster, every queue with all its members, none needing n for its
		// majority.
		c.waitHealthy(t, s.topo.Exchange, 2*time.Minute)
		c.waitSafeToStop(t, n, time.Minute)
		fmt.Printf("cluster 2: stop %s (accepted so far: %d)\n", n.node, len(load.acceptedIDs()))
		stopped := time.Now()
		if err := c.stopNode(n); err != nil {
			t.Fatal(err)
		}
		stopTook := time.Since(stopped)
		moves := s.waitMoved(n, stopped, 30*time.Second)
		if err := c.restart(n); err != nil {
			t.Fatal(err)
		}
		s.checkMoved(t, n, moves, 30*time.Second)
		steps = append(steps, fmt.Sprintf("%s stop took %s, down until %s; reconnected (from the stop command): %s",
			c.short(n), stopTook.Round(100*time.Millisecond), time.Since(stopped).Round(100*time.Millisecond), s.describeMoves(moves)))
	}
	c.waitHealthy(t, s.topo.Exchange, 2*time.Minute)
	time.Sleep(5 * time.Second) // the load goes on a little on the whole cluster
	load.stopFeeding()
	if err := <-loadErr; err != nil {
		t.Fatalf("load: %v", err)
	}
	accepted := load.acceptedIDs()
	tl := s.backend.waitDelivered(t, accepted, 2*time.Minute)
	dead := s.deadLetters(t)
	s.clusterReport(t, "2 (rolling restart)", tl, dead, load, accepted, strings.Join(steps, "; "))
	if tl.lost != 0 {
		t.Errorf("lost = %d, want 0", tl.lost)
	}
	if dead != 0 {
		t.Errorf("%d dead letters, want 0: the backend alone makes none", dead)
	}
	s.waitReady(t, 30*time.Second)
	s.stopAll(t)
}

// hungFor is how long scenario 3's node stays stopped: longer than a
// client needs to give a silent connection up (three AMQP heartbeats),
// shorter than the other nodes need to declare it down (net_ticktime, 60 s:
// 45 to 75 s), so that what is tested is the clients' detection, not the
// cluster's.
const hungFor = 30 * time.Second

// 3. A hung node: SIGSTOP of the node forwarder A consumes from (and
// ingress B publishes to), SIGCONT 30 s later. Its sockets stay open and
// its kernel accepts connections, but it answers nothing: the services must
// notice by themselves (heartbeats) and connect to a live node. Nothing is
// lost or dead-lettered.
//
// Connected is not yet working: while a node hangs, declaring the topology
// on a live node waits for it too (exchange and queue declarations and
// bindings are Mnesia transactions over every running node, and the others
// hold the hung one for running until net_ticktime, 60 s, says otherwise),
// so the services that moved are ready only once it resumes. The report
// shows it: the ingress's non-202 time, forwarder A's consuming again.
// Messages the main queue had handed to forwarder A's consumer on the hung
// node come back only when that consumer's channel ends there, about a
// minute after the node resumes (the delivery gap).
func TestCluster_HungNodeIsLeftForALiveOne(t *testing.T) {
	c := testCluster(t)
	cfg := fastRetries()
	s := newClusterStack(t, c, cfg, flakyBackend(0.2, maxFailuresPerID), nil)
	target := s.node(s.service("forwarder A"))
	if target == nil {
		t.Fatalf("forwarder A's log names no node:\n%s", s.service("forwarder A").proc.log.String())
	}
	// Each service starts at a random node: restart the ingresses until B
	// is on the target node and A is not, so that the clients have a live
	// ingress to turn to.
	for try := 0; ; try++ {
		var restart []string
		if s.node(s.service("ingress B")) != target {
			restart = append(restart, "ingress B")
		}
		if s.node(s.service("ingress A")) == target {
			restart = append(restart, "ingress A")
		}
		if len(restart) == 0 {
			break
		}
		if try == 30 {
			t.Fatalf("ingress B did not land on %s alone in 30 starts", target.node)
		}
		for _, label := range restart {
			mustStop(t, s.service(label).proc)
			s.startService(t, label)
		}
		s.waitReady(t, 30*time.Second)
	}
	watch := s.watchReadiness(s.service("forwarder A"))
	defer watch.stop()

	load := newLoader(s.ingressAddrs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	loadErr := make(chan error, 1)
	go func() {
		loadErr <- load.run(ctx, "cl3", 1<<30, clusterWorkers, clusterRate, clusterBody("p3"))
	}()

	time.Sleep(8 * time.Second)
	fmt.Printf("cluster 3: SIGSTOP %s (accepted so far: %d)\n", target.node, len(load.acceptedIDs()))
	hung := time.Now()
	if err := c.hang(target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(hungFor)
	moves := s.movesFrom(target, hung) // before SIGCONT: who left the node while it hung
	if err := c.resume(target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second) // the load goes on a little on the whole cluster
	load.stopFeeding()
	if err := <-loadErr; err != nil {
		t.Fatalf("load: %v", err)
	}
	accepted := load.acceptedIDs()
	tl := s.backend.waitDelivered(t, accepted, 2*time.Minute)
	c.waitHealthy(t, s.topo.Exchange, 2*time.Minute)
	dead := s.deadLetters(t)
	consuming := "not interrupted"
	if back := watch.readyAgain(hung); back > 0 {
		consuming = "again after " + back.Round(10*time.Millisecond).String()
	}
	s.clusterReport(t, "3 (hung node)", tl, dead, load, accepted,
		fmt.Sprintf("hung=%s for %s; left it (SIGSTOP to next \"broker connected\"): %s; forwarder A consuming %s",
			c.short(target), hungFor, s.describeMoves(moves), consuming))
	if tl.lost != 0 {
		t.Errorf("lost = %d, want 0", tl.lost)
	}
	if dead != 0 {
		t.Errorf("%d dead letters, want 0", dead)
	}
	// Forwarder A and the ingress on the hung node must have noticed and
	// connected to a live node while it hung.
	s.checkLeft(t, target, moves, hungFor, "forwarder A", "ingress B")
	s.waitReady(t, 30*time.Second)
	s.stopAll(t)
}

// tierDelay is scenario 4's retry delay: long enough that its messages are
// still in the tier after the kill, the election and the checks.
const tierDelay = 30 * time.Second

// 4. Messages waiting in a retry tier and dead letters survive the loss of
// any one node: 200 registrations fail their first attempt and wait in the
// tier, 100 are refused (400) and dead-lettered at once; then the node that
// leads the tier is killed (kill -9). On the two nodes left, the tier still
// holds all 200 and gives each back when its delay ends (all are
// delivered), and the dead-letter queue still holds the 100, every one (by
// id). When the dead-letter queue leads on another node, that node is
// killed next, once the first is back, and the 100 are checked again.
// After the nodes are back, still exactly 100.
func TestCluster_RetryTiersAndDeadLettersSurviveNodeLoss(t *testing.T) {
	c := testCluster(t)
	cfg := fastRetries()
	cfg.RetryInitial, cfg.RetryMax = tierDelay, tierDelay
	var mu sync.Mutex
	failed := map[string]bool{}
	decide := func(key string, _ []byte) answer {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(key, "cl4dead"):
			return answerRefuse
		case strings.HasPrefix(key, "cl4tier") && !failed[key]:
			failed[key] = true
			return answerFail
		}
		return answerOK
	}
	// A backend failing every first attempt would rightly open the breaker
	// and pause delivery; this scenario wants the messages parked in a tier.
	s := newClusterStack(t, c, cfg, decide, map[string]string{"BREAKER_FAILURE_THRESHOLD": "1000000", "BREAKER_FAILURE_RATE": "0"})
	tier := s.topo.Tiers()[0].Queue
	load := newLoader(s.ingressAddrs()...)
	const nTier, nDead = 200, 100
	if err := load.run(context.Background(), "cl4tier", nTier, 8, 0, clusterBody("p4")); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := load.run(context.Background(), "cl4dead", nDead, 8, 0, clusterBody("p4d")); err != nil {
		t.Fatalf("load: %v", err)
	}
	var tierIDs, deadIDs []string
	for _, id := range load.acceptedIDs() {
		if strings.HasPrefix(id, "cl4dead") {
			deadIDs = append(deadIDs, id)
		} else {
			tierIDs = append(tierIDs, id)
		}
	}
	parked := s.waitDepths(t, map[string]int{tier: nTier, s.topo.DeadQueue: nDead}, 15*time.Second)

	// Kill the tier's leader; if the dead-letter queue leads elsewhere, its
	// leader's turn comes once the tier has been delivered.
	victims := []*privateBroker{c.home(t, tier)}
	if h := c.home(t, s.topo.DeadQueue); h != victims[0] {
		victims = append(victims, h)
	}
	var rounds []string
	var tl tally
	var lostDead []string
	for i, victim := range victims {
		leads := "the tier and the dead-letter queue"
		switch {
		case len(victims) == 1:
		case i == 0:
			leads = "the tier"
		default:
			leads = "the dead-letter queue"
		}
		fmt.Printf("cluster 4: kill -9 %s, leader of %s\n", victim.node, leads)
		killed := time.Now()
		if err := c.kill9(victim); err != nil {
			t.Fatal(err)
		}
		// On the two nodes left: both queues answer with all their messages.
		want := map[string]int{s.topo.DeadQueue: nDead}
		if i == 0 {
			want[tier] = nTier
		}
		s.waitDepths(t, want, 15*time.Second)
		round := fmt.Sprintf("killed %s (leader of %s): both answered after %s", c.short(victim), leads, time.Since(killed).Round(10*time.Millisecond))
		if i == 0 {
			round += ", new tier leader " + c.short(c.home(t, tier))
			s.backend.awaitDelivered(tierIDs, tierDelay) // none comes back before its delay
			var defect string
			tl, defect = s.deliverAll(t, tierIDs, victim, time.Minute)
			round += suffix(defect)
		}
		for _, id := range s.missingDeadLetters(t, deadIDs) {
			if !slices.Contains(lostDead, id) {
				lostDead = append(lostDead, id)
			}
		}
		rounds = append(rounds, round)
		if err := c.restart(victim); err != nil {
			t.Fatal(err)
		}
		c.waitHealthy(t, s.topo.Exchange, 2*time.Minute)
	}
	dead := s.deadLetters(t)
	tl.accepted += len(deadIDs)
	tl.lost += len(lostDead)
	s.clusterReport(t, "4 (tier and dead letters, node loss)", tl, dead, load, tierIDs,
		fmt.Sprintf("waiting_in_tier=%d dead_before=%d; %s", parked[tier], parked[s.topo.DeadQueue], strings.Join(rounds, "; ")))
	if tl.lost != 0 {
		t.Errorf("lost = %d (%d of the tier's, %d dead letters: %v), want 0", tl.lost, tl.lost-len(lostDead), len(lostDead), lostDead)
	}
	if dead != nDead {
		t.Errorf("%d dead letters after the nodes came back, want %d", dead, nDead)
	}
	s.stopAll(t)
}

// waitDepths waits until each queue holds its number of messages (as a node
// that is up sees it) and returns the last depths seen.
func (s *clusterStack) waitDepths(t *testing.T, want map[string]int, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	got := map[string]int{}
	for {
		var errs []string
		for q, n := range want {
			d, err := queueDepth(s.c, q)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			got[q] = d
			if d != n {
				errs = append(errs, fmt.Sprintf("%s holds %d, want %d", q, d, n))
			}
		}
		if len(errs) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, strings.Join(errs, "; "))
		}
		time.Sleep(200 * time.Millisecond) // queue depth has no event to wait on
	}
}

// missingDeadLetters lists the dead-letter queue's ids (browsing it, which
// leaves every letter in place) and returns the ids of want not among them.
func (s *clusterStack) missingDeadLetters(t *testing.T, want []string) []string {
	t.Helper()
	conn, err := s.c.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	letters, err := deadletter.List(ctx, conn, s.topo, deadletter.Filter{})
	if err != nil {
		t.Fatalf("list dead letters: %v", err)
	}
	have := map[string]bool{}
	for _, l := range letters {
		have[l.ID] = true
	}
	var missing []string
	for _, id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// readinessWatch polls a service's /readyz and keeps every change.
type readinessWatch struct {
	mu      sync.Mutex
	changes []readyChange
	done    chan struct{}
	wg      sync.WaitGroup
}

type readyChange struct {
	at    time.Time
	ready bool
}

func (s *clusterStack) watchReadiness(svc *service) *readinessWatch {
	w := &readinessWatch{done: make(chan struct{})}
	client := &http.Client{Timeout: time.Second}
	w.wg.Go(func() {
		last := true
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			ready := false
			if resp, err := client.Get("http://" + svc.proc.addr + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
			if ready != last {
				w.mu.Lock()
				w.changes = append(w.changes, readyChange{at: time.Now(), ready: ready})
				w.mu.Unlock()
				last = ready
			}
		}
	})
	return w
}

func (w *readinessWatch) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
}

// readyAgain is how long after since the service was ready again, having
// been not ready in between; 0 if it never stopped being ready.
func (w *readinessWatch) readyAgain(since time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	wasDown := false
	for _, c := range w.changes {
		if c.at.Before(since) {
			continue
		}
		if !c.ready {
			wasDown = true
		} else if wasDown {
			return c.at.Sub(since)
		}
	}
	return 0
}

// suffix is "; "+note, or "" for no note.
func suffix(note string) string {
	if note == "" {
		return ""
	}
	return "; " + note
}
