//go:build cluster

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/topology"
)

// clusterStack is a scenario's relay on the cluster: two forwarders and two
// ingresses, each given AMQP_URL with all three nodes, and a backend.
type clusterStack struct {
	c       *rabbitCluster
	topo    *topology.Topology
	backend *chaosBackend
	fwdEnv  map[string]string
	ingEnv  map[string]string

	dir      string // the scenario's files
	mu       sync.Mutex
	services []*service // the running ones
	started  []*service // every one, restarted ones too
}

// service is one running binary of the stack with its name in reports.
type service struct {
	label string // "forwarder A"
	proc  *process
}

// newClusterStack brings every node of c up (an earlier scenario may have
// failed halfway), then starts the services and waits until all are ready.
func newClusterStack(t *testing.T, c *rabbitCluster, cfg topology.Config, decide func(string, []byte) answer, fwdExtra map[string]string) *clusterStack {
	t.Helper()
	c.ensureAllUp(t)
	s := &clusterStack{c: c, topo: chaosTopology(t, c, cfg), backend: newChaosBackend(t, decide), dir: t.TempDir()}
	env := envFor(c, s.topo, topologyEnv(cfg))
	s.fwdEnv = clone(env)
	s.fwdEnv["CATERING_SERVICE_EP"] = s.backend.URL + "/catering"
	// 20 % failures make five in a row now and then: the breaker may open,
	// and should close again at once rather than pause delivery for 5 s.
	s.fwdEnv["BREAKER_PROBE_INTERVAL"] = "250ms"
	s.fwdEnv["BREAKER_PROBE_MAX_INTERVAL"] = "1s"
	for k, v := range fwdExtra {
		s.fwdEnv[k] = v
	}
	s.ingEnv = clone(env)
	if dir := os.Getenv("CLUSTER_LOG_DIR"); dir != "" {
		t.Cleanup(func() { s.saveLogs(t, dir) })
	}
	for _, name := range []string{"forwarder A", "forwarder B", "ingress A", "ingress B"} {
		s.startService(t, name)
	}
	s.waitReady(t, time.Minute)
	return s
}

// startService starts (or restarts, under the same name and address) one
// of the stack's services.
func (s *clusterStack) startService(t *testing.T, label string) *service {
	t.Helper()
	var p *process
	if strings.HasPrefix(label, "forwarder") {
		p = start(t, "forwarder", clone(s.fwdEnv), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	} else {
		env := clone(s.ingEnv)
		if old := s.service(label); old != nil {
			env["INGRESS_ADDR"] = old.proc.addr // the clients know it
		}
		// Each ingress its own index file: by default it is one per topology
		// prefix, which two ingresses on one machine cannot share.
		env["INGRESS_INDEX_PATH"] = filepath.Join(s.dir, strings.ReplaceAll(label, " ", "-")+".index")
		p = start(t, "ingress", env, "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := &service{label: label, proc: p}
	s.started = append(s.started, svc)
	for i, old := range s.services {
		if old.label == label {
			s.services[i] = svc
			return svc
		}
	}
	s.services = append(s.services, svc)
	return svc
}

// saveLogs writes every service's log into dir (CLUSTER_LOG_DIR), one file
// per process: the logs of a passing run are worth reading too.
func (s *clusterStack) saveLogs(t *testing.T, dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, svc := range s.started {
		name := fmt.Sprintf("%s-%d-%s.log", t.Name(), i, strings.ReplaceAll(svc.label, " ", "-"))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svc.proc.log.String()), 0o644); err != nil {
			t.Logf("save log: %v", err)
		}
	}
}

func (s *clusterStack) service(label string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.services {
		if svc.label == label {
			return svc
		}
	}
	return nil
}

func (s *clusterStack) all() []*service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.services)
}

// ingressAddrs are the ingresses' addresses, for the clients.
func (s *clusterStack) ingressAddrs() []string {
	var addrs []string
	for _, svc := range s.all() {
		if svc.proc.name == "ingress" {
			addrs = append(addrs, svc.proc.addr)
		}
	}
	return addrs
}

// waitReady waits until every service answers /readyz with 200: the
// ingresses can publish, the forwarders consume.
func (s *clusterStack) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for _, svc := range s.all() {
		for {
			resp, err := client.Get("http://" + svc.proc.addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready after %s (%v):\n%s", svc.label, timeout, err, svc.proc.log.String())
			}
			time.Sleep(100 * time.Millisecond) // readiness has no event to wait on from here
		}
	}
}

// stopAll stops every service with SIGTERM and checks each exits 0.
func (s *clusterStack) stopAll(t *testing.T) {
	t.Helper()
	var wg sync.WaitGroup
	for _, svc := range s.all() {
		wg.Go(func() { mustStop(t, svc.proc) })
	}
	wg.Wait()
}

// connEvent is one "broker connected" line of a service's log.
type connEvent struct {
	at   time.Time
	conn string // the connection within the service: "" (its main one) or the log's component ("publisher")
	node *privateBroker
}

// connections reads the "broker connected" lines of p's log.
func (c *rabbitCluster) connections(p *process) []connEvent {
	var events []connEvent
	for line := range strings.Lines(p.log.String()) {
		var rec struct {
			Time      time.Time `json:"time"`
			Msg       string    `json:"msg"`
			Broker    string    `json:"broker"`
			Node      string    `json:"node"`
			Component string    `json:"component"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "broker connected" {
			continue
		}
		addr := rec.Node
		if addr == "" { // before the log named the node: the host of the URL
			if u, err := url.Parse(rec.Broker); err == nil {
				addr = u.Host
			}
		}
		events = append(events, connEvent{at: rec.Time, conn: rec.Component, node: c.byAddr(addr)})
	}
	return events
}

// move is what became of one connection that was on a node when it failed.
type move struct {
	who   string         // "forwarder A publisher"
	to    *privateBroker // the node of its next connection; nil: none yet
	after time.Duration  // from the failure to that connection
}

// movesFrom finds every connection of the stack that was on n at the moment
// it failed, and when and where each connected next.
func (s *clusterStack) movesFrom(n *privateBroker, failed time.Time) []move {
	var moves []move
	for _, svc := range s.all() {
		events := s.c.connections(svc.proc)
		last := map[string]connEvent{} // per connection, its last connection before the failure
		for _, e := range events {
			if e.at.Before(failed) {
				last[e.conn] = e
			}
		}
		for conn, before := range last {
			if before.node != n {
				continue
			}
			m := move{who: strings.TrimSpace(svc.label + " " + conn)}
			for _, e := range events {
				if e.conn == conn && !e.at.Before(failed) {
					m.to, m.after = e.node, e.at.Sub(failed)
					break
				}
			}
			moves = append(moves, m)
		}
	}
	slices.SortFunc(moves, func(a, b move) int { return strings.Compare(a.who, b.who) })
	return moves
}

// waitMoved waits until every connection that was on n when it failed has
// connected again, and returns where and when. Connections that have not by
// the deadline are returned with to == nil.
func (s *clusterStack) waitMoved(n *privateBroker, failed time.Time, timeout time.Duration) []move {
	deadline := time.Now().Add(timeout)
	for {
		moves := s.movesFrom(n, failed)
		done := true
		for _, m := range moves {
			done = done && m.to != nil
		}
		if done || time.Now().After(deadline) {
			return moves
		}
		time.Sleep(100 * time.Millisecond) // the logs have no event to wait on
	}
}

// describeMoves is moves for the report: "forwarder A→n3 in 0.31s, ...".
func (s *clusterStack) describeMoves(moves []move) string {
	if len(moves) == 0 {
		return "none"
	}
	var parts []string
	for _, m := range moves {
		if m.to == nil {
			parts = append(parts, m.who+"→(not reconnected)")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s→%s in %s", m.who, s.c.short(m.to), m.after.Round(10*time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// checkLeft fails t for every service among labels that had no connection
// on from when it failed, or did not connect to another node within bound
// (any of its connections: the forwarder's consumer waits for its publisher
// to be back before it reconnects, see TestCluster_HungNodeIsLeftForALiveOne).
func (s *clusterStack) checkLeft(t *testing.T, from *privateBroker, moves []move, bound time.Duration, labels ...string) {
	t.Helper()
	for _, label := range labels {
		on, left := false, false
		for _, m := range moves {
			if m.who != label && !strings.HasPrefix(m.who, label+" ") {
				continue
			}
			on = true
			left = left || (m.to != nil && m.to != from && m.after <= bound)
		}
		switch {
		case !on:
			t.Errorf("%s had no connection on %s when it failed", label, from.node)
		case !left:
			t.Errorf("%s did not connect to another node within %s of %s failing: %s", label, bound, from.node, s.describeMoves(moves))
		}
	}
}

// checkMoved fails t for every connection that did not reconnect to another
// node within bound.
func (s *clusterStack) checkMoved(t *testing.T, from *privateBroker, moves []move, bound time.Duration) {
	t.Helper()
	for _, m := range moves {
		switch {
		case m.to == nil:
			t.Errorf("%s was on %s and never reconnected", m.who, from.node)
		case m.to == from:
			t.Errorf("%s reconnected to %s itself, not to another node", m.who, from.node)
		case m.after > bound:
			t.Errorf("%s took %s to reconnect to another node, want at most %s", m.who, m.after, bound)
		}
	}
}

// node returns the node a service's main connection is on now (the
// forwarder's consumer, the ingress's publisher), from its log, or nil.
func (s *clusterStack) node(svc *service) *privateBroker {
	var n *privateBroker
	for _, e := range s.c.connections(svc.proc) {
		if e.conn == "" {
			n = e.node
		}
	}
	return n
}

// clientView is what the clients saw during a scenario.
type clientView struct {
	non202       int                      // answers other than 202 (and transport errors)
	ingressDown  map[string]time.Duration // per ingress address: longest time between two 202s with only failures in between
	longestNo202 time.Duration            // longest time without a 202 from any ingress
}

func (l *loader) view() clientView {
	l.mu.Lock()
	outcomes := slices.Clone(l.outcomes)
	l.mu.Unlock()
	slices.SortFunc(outcomes, func(a, b outcome) int { return a.at.Compare(b.at) })
	v := clientView{ingressDown: map[string]time.Duration{}}
	type state struct {
		lastOK time.Time
		failed bool
	}
	per := map[string]*state{}
	var lastOK time.Time
	for _, o := range outcomes {
		st := per[o.addr]
		if st == nil {
			st = &state{lastOK: o.at}
			per[o.addr] = st
		}
		if !o.accepted {
			v.non202++
			st.failed = true
			v.ingressDown[o.addr] = max(v.ingressDown[o.addr], o.at.Sub(st.lastOK))
			continue
		}
		if st.failed {
			v.ingressDown[o.addr] = max(v.ingressDown[o.addr], o.at.Sub(st.lastOK))
		}
		st.lastOK, st.failed = o.at, false
		if !lastOK.IsZero() {
			v.longestNo202 = max(v.longestNo202, o.at.Sub(lastOK))
		}
		lastOK = o.at
	}
	return v
}

// deliveryGap is the longest time between two first deliveries of ids at
// the backend.
func (b *chaosBackend) deliveryGap(ids []string) time.Duration {
	b.mu.Lock()
	var at []time.Time
	for _, id := range ids {
		if t, ok := b.firstAt[id]; ok {
			at = append(at, t)
		}
	}
	b.mu.Unlock()
	slices.SortFunc(at, time.Time.Compare)
	var gap time.Duration
	for i := 1; i < len(at); i++ {
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	return gap
}

// flakyBackend fails rate of the requests with a 500, but never one id more
// than maxFailures times: with MAX_DELIVERY_ATTEMPTS above maxFailures the
// backend alone makes no dead letter, so any dead letter is the cluster's
// doing.
func flakyBackend(rate float64, maxFailures int) func(string, []byte) answer {
	var mu sync.Mutex
	failed := map[string]int{}
	return func(key string, _ []byte) answer {
		mu.Lock()
		defer mu.Unlock()
		if failed[key] < maxFailures && rand.Float64() < rate {
			failed[key]++
			return answerFail
		}
		return answerOK
	}
}

// clusterReport prints a scenario's line: the tally, the dead letters, what
// the clients saw and the longest stall of deliveries, then extra.
func (s *clusterStack) clusterReport(t *testing.T, scenario string, tl tally, dead int, load *loader, ids []string, extra string) {
	v := load.view()
	var down, nacked []string
	for _, svc := range s.all() {
		if svc.proc.name == "ingress" {
			down = append(down, fmt.Sprintf("%s=%s", strings.TrimPrefix(svc.label, "ingress "), v.ingressDown[svc.proc.addr].Round(10*time.Millisecond)))
		}
		nacked = append(nacked, fmt.Sprintf("%s=%d", shortLabel(svc.label), s.nacked(svc.label)))
	}
	line := fmt.Sprintf("cluster %s: accepted=%d delivered=%d lost=%d duplicates=%d dead_letters=%d | non202_answers=%d ingress_non202_time[%s] nacked_by_broker[%s] client_no_202_gap=%s delivery_gap=%s | %s",
		scenario, tl.accepted, tl.delivered, tl.lost, tl.duplicates, dead,
		v.non202, strings.Join(down, " "), strings.Join(nacked, " "), v.longestNo202.Round(10*time.Millisecond), s.backend.deliveryGap(ids).Round(10*time.Millisecond), extra)
	t.Log(line)
	fmt.Println(line)
}

// nacked counts the publishes the broker refused to the service label
// (every process of that name in the scenario): the registrations an
// ingress answered 503 for, the moves to a retry tier or the dead-letter
// queue a forwarder parked and tried again. No queue of the suite has a
// length limit, so each is the mark of a channel made while a queue's first
// member was down (the 3.10.8 defect above deliverAll).
func (s *clusterStack) nacked(label string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, svc := range s.started {
		if label == "" || svc.label == label {
			n += strings.Count(svc.proc.log.String(), "refused by broker (nack)")
		}
	}
	return n
}

// shortLabel is "fA" for "forwarder A", "iB" for "ingress B".
func shortLabel(label string) string {
	kind, name, _ := strings.Cut(label, " ")
	return kind[:1] + name
}

// deadLetters counts the scenario's dead letters, waiting for the queue to
// answer (its node may be coming back).
func (s *clusterStack) deadLetters(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := queueDepth(s.c, s.topo.DeadQueue)
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-letter queue: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // the queue's availability has no event to wait on
	}
}

// diagnose logs, when a scenario lost something, where its queues stand and
// what the nodes logged about them.
func (s *clusterStack) diagnose(t *testing.T) {
	t.Helper()
	qs, err := s.c.queues(s.topo.Exchange, nil)
	if err != nil {
		t.Logf("diagnose: %v", err)
	}
	for _, q := range qs {
		t.Logf("queue %s: type %s, %d messages, leader %q, members %v, online %v", q.Name, q.Type, q.Messages, q.Leader, q.Members, q.Online)
		if q.Type != "quorum" || q.Messages == 0 {
			continue
		}
		for _, n := range s.c.up() {
			if n.node != q.Leader {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
			out, err := n.run(ctx, "rabbitmqctl", "eval", fmt.Sprintf("ra:local_query({'%%2F_%s', node()}, fun rabbit_fifo:overview/1).", q.Name))
			cancel()
			t.Logf("overview of %s on its leader: %v %s", q.Name, err, out)
		}
	}
	for _, n := range s.c.up() {
		ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
		out, err := n.run(ctx, "rabbitmqctl", "eval", "{application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout), [sys:get_status(P, 5000) || {_, P, _, _} <- supervisor:which_children(rabbit_fifo_dlx_sup), is_pid(P)]}.")
		cancel()
		t.Logf("%s dlx workers: %v %s", s.c.short(n), err, out)
	}
	for _, n := range s.c.nodes {
		raw, _ := os.ReadFile(filepath.Join(n.dir, "log", n.node+".log"))
		for line := range strings.Lines(string(raw)) {
			if strings.Contains(line, s.topo.Exchange) || strings.Contains(line, "dlx") || strings.Contains(line, "dead-letter") {
				t.Logf("%s: %s", s.c.short(n), strings.TrimSpace(line))
			}
		}
	}
}

// RabbitMQ 3.10.8 strands retries when a node dies with the leaders of both
// a retry tier and the main queue (a defect of rabbit_fifo_client:enqueue/3
// that this suite found; see deliverAll):
//
// A quorum-queue client's first publish to a queue asks one member for the
// Ra machine version over rpc: the leader it knows, else the first of the
// members it was made with (the queue record's leader first). When that
// node is down the rpc fails, the client answers reject_publish and keeps
// nothing, so every later publish asks the same dead node again and is
// rejected again, until that node returns. A retry tier's at-least-once
// dead-letter worker starts on the tier's new leader right after the old
// one died; if the main queue's leader died with it and the main queue's
// record still names it, the worker's client is made with the dead node
// first. The worker re-publishes every dead_letter_worker_publisher_confirm_timeout,
// is rejected every time, and holds its 32-message prefetch: the tier keeps
// every message but returns none until the dead node is back (or the tier
// gets a new leader, hence a new worker). Seen in about one leader kill in
// three here (its state, from sys:get_status of the worker: the target's
// client with leader undefined and the dead node first; every pending
// message "rejected" by the main queue, published again every settle
// timeout).
//
// Channels have the same fate: a service that reconnects within that
// window (about 150 ms after the kill, before the election) gets every
// publish to that queue nacked until the dead node returns. An ingress
// answers 503 for each (the clients retry on the other ingress); a
// forwarder parks each move to a retry tier and tries again, nacked again,
// with its prefetch full of messages it can neither move nor ack, so it
// delivers nothing more. nacked_by_broker in the report counts them.
// Nothing stored is lost: the messages stay in their queues, replicated. The
// remedy is the dead node's return, which a process supervisor (systemd,
// Kubernetes) brings within seconds to minutes, and which deliverAll brings
// about when it finds the defect's marks. Reopening a channel whose publish
// was nacked should spare the services: by then the queue record names the
// new leader.

// strandGrace is how long deliverAll waits for the last deliveries before it
// looks for stranded messages: healthy tiers hold messages for at most 2 s
// here (fastRetries), so 20 s is ample.
const strandGrace = 20 * time.Second

// deliverAll waits until every id reached the backend and returns the
// tally. While down (a node the scenario killed, or nil) is down, messages
// may be stranded by the 3.10.8 defect described above: if after
// strandGrace some ids are missing and the scenario's tiers hold messages
// they have dead-lettered but not forwarded, or the broker nacked a
// service's publishes, it says so, restarts down, and waits on; note then
// tells the report what happened.
func (s *clusterStack) deliverAll(t *testing.T, ids []string, down *privateBroker, timeout time.Duration) (tl tally, note string) {
	t.Helper()
	tl = s.backend.awaitDelivered(ids, strandGrace)
	if tl.lost == 0 {
		return tl, ""
	}
	stranded, where := s.strandedInTiers(t)
	nacks := s.nacked("")
	if (stranded == 0 && nacks == 0) || down == nil || !s.c.isDown(down) {
		s.diagnose(t)
		return s.backend.waitDelivered(t, ids, timeout), ""
	}
	if stranded == 0 {
		where = []string{"no tier"}
	}
	note = fmt.Sprintf("rabbitmq 3.10.8 defect: %d messages stranded in %s, %d publishes nacked, while %s was down; %d ids undelivered after %s, delivered once it was restarted",
		stranded, strings.Join(where, ", "), nacks, s.c.short(down), tl.lost, strandGrace)
	fmt.Printf("cluster: %s\n", note)
	t.Log(note)
	if err := s.c.restart(down); err != nil {
		t.Fatal(err)
	}
	if tl = s.backend.waitDelivered(t, ids, timeout); tl.lost != 0 {
		s.diagnose(t)
	}
	return tl, note
}

// strandedInTiers counts the messages the scenario's retry tiers hold that
// neither wait for their delay (ready) nor sit with a consumer (none
// consumes a tier): those they have dead-lettered and keep until the main
// queue confirms them.
func (s *clusterStack) strandedInTiers(t *testing.T) (int, []string) {
	t.Helper()
	qs, err := s.c.queues(s.topo.Queue+".retry.", nil)
	if err != nil {
		t.Fatal(err)
	}
	n, where := 0, []string(nil)
	for _, q := range qs {
		if k := q.Messages - q.Ready - q.Unacked; k > 0 {
			n += k
			where = append(where, fmt.Sprintf("%s (%d)", strings.TrimPrefix(q.Name, s.topo.Queue+"."), k))
		}
	}
	return n, where
}
