//go:build cluster

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitCluster is the cluster suite's three private RabbitMQ nodes, joined
// into one cluster: each with its own node name, AMQP and distribution ports
// and data directory, no plugins (so no management port to collide with the
// shared broker's 15672/15692). They share epmd (4369) and the rabbitmq
// user's Erlang cookie with the shared broker on 5672, which is what lets
// them join one another; the shared broker is never touched.
type rabbitCluster struct {
	nodes []*privateBroker

	mu   sync.Mutex
	down map[*privateBroker]bool // killed, stopped or hung: the test's own dials skip it
}

// clusterConf is what the nodes add to rabbitmq.conf. pause_minority is what
// a three-node production cluster runs (the RabbitMQ Cluster Operator's
// default): a node cut off from the other two stops serving instead of
// diverging, and heals by itself when it sees them again.
const clusterConf = "cluster_partition_handling = pause_minority\n"

// clusterAdvanced is the nodes' advanced.config. The at-least-once
// dead-letter worker of a retry tier re-publishes a message its target
// refused, or did not confirm, after dead_letter_worker_publisher_confirm_timeout:
// 180 s by default, which makes a tier stranded by the 3.10.8 defect (see
// deliverAll) take up to three more minutes to drain after the dead node is
// back. 10 s costs at most a duplicate in the main queue when a confirm is
// slower than that (the backend dedupes on Idempotency-Key); no message is
// given up. (Not in rabbitmq.conf's schema in 3.10: advanced.config only.)
const clusterAdvanced = "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 10000}]}].\n"

var (
	sharedCluster     *rabbitCluster
	sharedClusterErr  error
	sharedClusterOnce sync.Once
)

// testCluster starts the suite's cluster on first use and stops it after all
// tests.
func testCluster(t *testing.T) *rabbitCluster {
	t.Helper()
	sharedClusterOnce.Do(func() {
		sharedCluster, sharedClusterErr = startCluster(3)
		if sharedCluster != nil {
			afterAll = append(afterAll, sharedCluster.shutdown)
		}
	})
	if sharedClusterErr != nil {
		t.Fatalf("private RabbitMQ cluster: %v", sharedClusterErr)
	}
	return sharedCluster
}

func startCluster(size int) (*rabbitCluster, error) {
	if err := checkCanRunNodes(); err != nil {
		return nil, err
	}
	started := time.Now()
	c := &rabbitCluster{down: map[*privateBroker]bool{}}
	for i := range size {
		dir, err := os.MkdirTemp("", "relay-cluster-rabbit-")
		if err != nil {
			c.shutdown()
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			c.shutdown()
			return nil, err
		}
		n, err := newPrivateNode(fmt.Sprintf("relaycluster%d-%d@localhost", i+1, os.Getpid()), dir, port, "[].\n", clusterConf, clusterAdvanced)
		if err != nil {
			c.shutdown()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	// The nodes boot at once (each takes 10-20 s here), then join the first
	// one after the other.
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.shutdown()
		return nil, err
	}
	first := c.nodes[0]
	for _, n := range c.nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", first.node}, {"start_app"}} {
			if out, err := n.run(context.Background(), "rabbitmqctl", args...); err != nil {
				c.shutdown()
				return nil, fmt.Errorf("%s: rabbitmqctl %s: %v: %s", n.node, strings.Join(args, " "), err, out)
			}
		}
	}
	if err := c.waitRunning(first, c.nodes, time.Minute); err != nil {
		c.shutdown()
		return nil, err
	}
	fmt.Printf("cluster: %d nodes clustered in %s: %s\n", size, time.Since(started).Round(time.Millisecond), c.amqpURL())
	return c, nil
}

func (c *rabbitCluster) shutdown() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() {
			if pid, err := n.pid(); err == nil {
				_ = syscall.Kill(pid, syscall.SIGCONT) // a hung node cannot stop
			}
			if dir := os.Getenv("CLUSTER_LOG_DIR"); dir != "" {
				// The nodes' logs go with their directories: keep them.
				raw, _ := os.ReadFile(filepath.Join(n.dir, "log", n.node+".log"))
				_ = os.WriteFile(filepath.Join(dir, "rabbitmq-"+c.short(n)+".log"), raw, 0o644)
			}
			n.shutdown()
		})
	}
	wg.Wait()
}

// amqpURL is the services' AMQP_URL: every node's URL, comma-separated.
func (c *rabbitCluster) amqpURL() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// dial connects to the first node that is not down.
func (c *rabbitCluster) dial() (*amqp.Connection, error) {
	var errs []error
	for _, n := range c.up() {
		conn, err := amqp.DialConfig(n.URL(), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", n.node, err))
	}
	return nil, fmt.Errorf("no cluster node answers: %w", errors.Join(errs...))
}

// up returns the nodes not marked down, in order.
func (c *rabbitCluster) up() []*privateBroker {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*privateBroker
	for _, n := range c.nodes {
		if !c.down[n] {
			out = append(out, n)
		}
	}
	return out
}

func (c *rabbitCluster) isDown(n *privateBroker) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down[n]
}

func (c *rabbitCluster) setDown(n *privateBroker, down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[n] = down
}

// byAddr returns the node listening on addr (host:port, as the services'
// logs and probes name it), or nil.
func (c *rabbitCluster) byAddr(addr string) *privateBroker {
	for _, n := range c.nodes {
		if strings.HasSuffix(addr, fmt.Sprintf(":%d", n.port)) {
			return n
		}
	}
	return nil
}

// short is a node's name for reports: relaycluster2-123@localhost is "n2".
func (c *rabbitCluster) short(n *privateBroker) string {
	if i := slices.Index(c.nodes, n); i >= 0 {
		return fmt.Sprintf("n%d", i+1)
	}
	return "?"
}

// run runs a RabbitMQ CLI tool (rabbitmqctl, rabbitmq-queues) against n,
// bounded by ctx.
func (b *privateBroker) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append([]string{"-n", b.node}, args...)...)
	cmd.Env = b.env
	return cmd.CombinedOutput()
}

// ctlTimeout bounds one CLI call: a node that does not answer must not hang
// the suite.
const ctlTimeout = 30 * time.Second

// queueInfo is one queue as rabbitmqctl list_queues shows it.
type queueInfo struct {
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	Leader   string    `json:"leader"`  // quorum queues only
	Members  nodeNames `json:"members"` // quorum queues only
	Online   nodeNames `json:"online"`  // quorum queues only
	Messages int       `json:"messages"`
	// Ready and Unacked are the messages consumers can get and those they
	// hold. A quorum queue counts a third kind in Messages only: those it
	// dead-lettered and keeps until the dead-letter target confirmed them
	// (at-least-once dead-lettering).
	Ready   int `json:"messages_ready"`
	Unacked int `json:"messages_unacknowledged"`
}

// nodeNames is a list of nodes, which list_queues prints as "" for queues
// that have none (classic ones).
type nodeNames []string

func (n *nodeNames) UnmarshalJSON(raw []byte) error {
	if string(raw) == `""` {
		*n = nil
		return nil
	}
	return json.Unmarshal(raw, (*[]string)(n))
}

// queues lists the queues whose names start with prefix as a node that is
// up sees them, or only those whose home is that node (local: the node a
// classic queue lives on; a quorum queue's leader).
func (c *rabbitCluster) queues(prefix string, local *privateBroker) ([]queueInfo, error) {
	args := []string{"list_queues", "name", "type", "leader", "members", "online", "messages", "messages_ready", "messages_unacknowledged", "--formatter", "json", "--quiet"}
	nodes := c.up()
	if local != nil {
		nodes, args = []*privateBroker{local}, append(args, "--local")
	}
	var errs []error
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
		out, err := n.run(ctx, "rabbitmqctl", args...)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: list_queues: %v: %s", n.node, err, out))
			continue
		}
		var all []queueInfo
		if err := json.Unmarshal(out, &all); err != nil {
			return nil, fmt.Errorf("list_queues: %w: %s", err, out)
		}
		var qs []queueInfo
		for _, q := range all {
			if strings.HasPrefix(q.Name, prefix) {
				qs = append(qs, q)
			}
		}
		return qs, nil
	}
	return nil, errors.Join(errs...)
}

// home returns the node a queue lives on: a quorum queue's leader, the node
// of a classic queue.
func (c *rabbitCluster) home(t *testing.T, queue string) *privateBroker {
	t.Helper()
	for _, n := range c.up() {
		qs, err := c.queues(queue, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if q.Name != queue {
				continue
			}
			if q.Type == "quorum" && q.Leader != n.node {
				continue // --local lists a quorum queue on its followers too
			}
			return n
		}
	}
	t.Fatalf("queue %s: no node that is up is its home", queue)
	return nil
}

// waitRunning waits until the cluster, as node from sees it, runs want.
func (c *rabbitCluster) waitRunning(from *privateBroker, want []*privateBroker, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
		out, err := from.run(ctx, "rabbitmqctl", "cluster_status", "--formatter", "json")
		cancel()
		var status struct {
			Running []string `json:"running_nodes"`
		}
		if err == nil {
			err = json.Unmarshal(out, &status)
		}
		missing := []string{}
		for _, n := range want {
			if !slices.Contains(status.Running, n.node) {
				missing = append(missing, n.node)
			}
		}
		if err == nil && len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %s does not see %v running (err %v): %s", timeout, from.node, missing, err, out)
		}
		time.Sleep(200 * time.Millisecond) // cluster membership has no event to wait on from here
	}
}

// waitHealthy waits until every node runs in the cluster and every
// replicated queue (quorum, stream) named prefix* has all its members
// online, so that any one node may go next.
func (c *rabbitCluster) waitHealthy(t *testing.T, prefix string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	if err := c.waitRunning(c.up()[0], c.nodes, timeout); err != nil {
		t.Fatal(err)
	}
	for {
		qs, err := c.queues(prefix, nil)
		lagging := []string{}
		for _, q := range qs {
			if q.Type != "quorum" && q.Type != "stream" {
				continue
			}
			if len(q.Online) != len(c.nodes) || len(q.Members) != len(c.nodes) || q.Leader == "" {
				lagging = append(lagging, fmt.Sprintf("%s (leader %q, online %v)", q.Name, q.Leader, q.Online))
			}
		}
		if err == nil && len(lagging) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not healthy after %s: err %v; %v", timeout, err, lagging)
		}
		time.Sleep(250 * time.Millisecond) // queue membership has no event to wait on from here
	}
}

// waitSafeToStop waits until stopping n would leave every quorum queue its
// majority: what a rolling restart checks before each step
// (rabbitmq-queues check_if_node_is_quorum_critical). A member that is up
// but still catching up counts as critical.
func (c *rabbitCluster) waitSafeToStop(t *testing.T, n *privateBroker, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
		out, err := n.run(ctx, "rabbitmq-queues", "check_if_node_is_quorum_critical")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still quorum critical after %s: %v: %s", n.node, timeout, err, out)
		}
		time.Sleep(250 * time.Millisecond) // the check has no event to wait on
	}
}

// kill9 kills n's Erlang VM, as a crash or an OOM kill would.
func (c *rabbitCluster) kill9(n *privateBroker) error {
	c.setDown(n, true)
	return n.kill9()
}

// stopNode stops n cleanly (rabbitmqctl stop: the whole VM).
func (c *rabbitCluster) stopNode(n *privateBroker) error {
	c.setDown(n, true)
	return n.stop()
}

// restart starts n after a kill or a stop (if it is not back already) and
// waits until the other nodes see it running: a node that comes back with
// its data directory rejoins its cluster by itself.
func (c *rabbitCluster) restart(n *privateBroker) error {
	if !c.isDown(n) {
		return nil // back already
	}
	if err := n.start(); err != nil {
		return err
	}
	var other *privateBroker
	for _, o := range c.up() {
		if o != n {
			other = o
			break
		}
	}
	if err := c.waitRunning(other, []*privateBroker{n}, time.Minute); err != nil {
		return err
	}
	c.setDown(n, false)
	return nil
}

// hang stops n's Erlang VM with SIGSTOP: the node keeps its sockets open and
// its kernel keeps accepting connections, but it answers nothing, as a node
// in a stalled VM or a long GC pause does. resume is SIGCONT.
func (c *rabbitCluster) hang(n *privateBroker) error {
	pid, err := n.pid()
	if err != nil {
		return err
	}
	c.setDown(n, true)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("kill -STOP %d: %w", pid, err)
	}
	fmt.Printf("rabbitmq: node %s hung (kill -STOP %d)\n", n.node, pid)
	return nil
}

func (c *rabbitCluster) resume(n *privateBroker) error {
	pid, err := n.pid()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("kill -CONT %d: %w", pid, err)
	}
	fmt.Printf("rabbitmq: node %s resumed (kill -CONT %d)\n", n.node, pid)
	c.setDown(n, false)
	return nil
}

// ensureAllUp brings back every node an earlier scenario left down (a hung
// one gets SIGCONT, a killed or stopped one is started) and waits until the
// cluster is healthy.
func (c *rabbitCluster) ensureAllUp(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		if !c.isDown(n) {
			continue
		}
		var err error
		if pid, perr := n.pid(); perr == nil && syscall.Kill(pid, 0) == nil {
			err = c.resume(n)
		} else {
			err = c.restart(n)
		}
		if err != nil {
			t.Fatalf("bring %s back: %v", n.node, err)
		}
	}
	c.waitHealthy(t, "", 2*time.Minute)
}
