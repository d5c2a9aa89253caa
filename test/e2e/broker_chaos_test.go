//go:build chaos

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// privateBroker is a RabbitMQ node of the suite's own, on its own ports and
// data directory, so killing it never disturbs the shared broker on 5672.
// It needs Debian's rabbitmq-server and root (the node runs as the rabbitmq
// user, which must own its directory).
type privateBroker struct {
	dir  string
	node string
	port int
	env  []string
}

var (
	sharedBroker     *privateBroker
	sharedBrokerErr  error
	sharedBrokerOnce sync.Once
)

// chaosBroker starts the suite's node on first use and stops it after all tests.
func chaosBroker(t *testing.T) *privateBroker {
	t.Helper()
	sharedBrokerOnce.Do(func() {
		sharedBroker, sharedBrokerErr = startPrivateBroker()
		if sharedBroker != nil {
			afterAll = append(afterAll, sharedBroker.shutdown)
		}
	})
	if sharedBrokerErr != nil {
		t.Fatalf("private RabbitMQ node: %v", sharedBrokerErr)
	}
	return sharedBroker
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startPrivateBroker() (*privateBroker, error) {
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		return nil, errors.New("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the chaos suite must run as root: the private node runs as the rabbitmq user")
	}
	dir, err := os.MkdirTemp("", "relay-chaos-rabbit-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dist, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &privateBroker{dir: dir, node: fmt.Sprintf("relaychaos%d@localhost", os.Getpid()), port: port}
	files := map[string]string{
		"enabled_plugins": "[].\n",
		// The system's rabbitmq.conf pins the listener to 5672; ours replaces it.
		"rabbitmq.conf": fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\n", port),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if out, err := exec.Command("chown", "-R", "rabbitmq:rabbitmq", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown %s: %v: %s", dir, err, out)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	b.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+b.node,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+b.pidFile(),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
	)
	return b, b.start()
}

// URL is the node's AMQP URL.
func (b *privateBroker) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", b.port) }

func (b *privateBroker) pidFile() string { return filepath.Join(b.dir, "rabbit.pid") }

func (b *privateBroker) start() error {
	_ = os.Remove(b.pidFile()) // a stale one would make wait watch a dead pid
	started := time.Now()
	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmq-server -detached: %v: %s", err, out)
	}
	wait := exec.Command("rabbitmqctl", "-n", b.node, "wait", b.pidFile(), "--timeout", "120")
	wait.Env = b.env
	if out, err := wait.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmqctl wait: %v: %s\nlog: %s", err, out, b.logTail())
	}
	fmt.Printf("chaos: private RabbitMQ node %s up on port %d in %s\n", b.node, b.port, time.Since(started).Round(time.Millisecond))
	return nil
}

// kill9 kills the node's OS process, as a crash or an OOM kill would.
func (b *privateBroker) kill9() error {
	raw, err := os.ReadFile(b.pidFile())
	if err != nil {
		return fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %d: %w", pid, err)
	}
	for syscall.Kill(pid, 0) == nil { // until the process is gone
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("chaos: RabbitMQ node killed (kill -9 %d)\n", pid)
	return nil
}

func (b *privateBroker) shutdown() {
	stop := exec.Command("rabbitmqctl", "-n", b.node, "stop")
	stop.Env = b.env
	_ = stop.Run()
	_ = os.RemoveAll(b.dir)
}

func (b *privateBroker) logTail() string {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "log", b.node+".log"))
	if len(raw) > 3000 {
		raw = raw[len(raw)-3000:]
	}
	return string(raw)
}

// ctl runs rabbitmqctl against the node.
func (b *privateBroker) ctl(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("rabbitmqctl", append([]string{"-n", b.node}, args...)...)
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl %v: %v: %s", args, err, out)
	}
}

// stop shuts the node down cleanly and waits until its process has exited.
func (b *privateBroker) stop() error {
	cmd := exec.Command("rabbitmqctl", "-n", b.node, "stop", b.pidFile())
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmqctl stop: %v: %s", err, out)
	}
	fmt.Println("chaos: RabbitMQ node stopped (rabbitmqctl stop)")
	return nil
}
