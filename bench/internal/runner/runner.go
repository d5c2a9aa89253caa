// Package runner runs the benchmark's phases in order and collects what they
// measured: the broker's ceiling, the ingress at saturation and at fixed
// rates, end to end, backlog drain, slow and flaky backends, and memory.
package runner

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/bench/internal/load"
	"github.com/railco/relay/bench/internal/procs"
	"github.com/railco/relay/bench/internal/rawamqp"
	"github.com/railco/relay/bench/internal/sink"
)

// memSample is how often service RSS is read from /proc.
const memSample = 50 * time.Millisecond

// Runner holds what the phases share.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	runID   string
	payload *load.Payload
	conn    *amqp.Connection // for declaring, inspecting and deleting
	sink    *sink.Remote
	binDir  string
	logDir  string
	res     *Results
	running []*procs.Process // started and not yet stopped, killed on failure
	broker  int              // the broker's pid when it runs on this machine, else 0
}

// Run executes the configured phases and returns the results. A phase that
// fails is recorded in Results.Failures and the run goes on where it can; the
// error is for problems that stop the whole run (no broker, no build).
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed, err := os.ReadFile(filepath.Join(cfg.Repo, cfg.Seed))
	if err != nil {
		return nil, fmt.Errorf("read seed payload: %w", err)
	}
	payload, err := load.NewPayload(seed)
	if err != nil {
		return nil, fmt.Errorf("seed payload: %w", err)
	}
	conn, err := amqp.Dial(cfg.AMQPURL)
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()

	tmp, err := os.MkdirTemp("", "relaybench-")
	if err != nil {
		return nil, err
	}
	r := &Runner{
		cfg: cfg, log: log, runID: "bench." + randomHex(4), payload: payload, conn: conn,
		binDir: filepath.Join(tmp, "bin"), logDir: filepath.Join(tmp, "logs"),
		res: &Results{Started: time.Now().UTC(), Config: cfg, Failures: []string{}},
	}
	if err := os.MkdirAll(r.binDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		return nil, err
	}
	r.res.Machine = machine(ctx, cfg.Repo, conn)
	if uri, err := amqp.ParseURI(cfg.AMQPURL); err == nil {
		if pid, err := procs.ListenerPID(uri.Port); err == nil {
			r.broker = pid
		} else {
			log.Warn("broker CPU is not measured", "err", err)
		}
	}
	log.Info("building services", "dir", r.binDir)
	if err := procs.Build(ctx, cfg.Repo, r.binDir, "ingress", "forwarder"); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if r.sink, err = sink.Spawn(ctx, exe); err != nil {
		return nil, err
	}
	defer r.sink.Close()
	defer func() {
		for _, p := range r.running {
			p.Kill()
		}
	}()

	started := time.Now()
	phases := []struct {
		n    int
		name string
		run  func(context.Context) error
	}{
		{1, "broker limit", r.brokerLimit},
		{2, "ingress max", r.ingressMax},
		{3, "ingress fixed rates", r.ingressFixed},
		{4, "end to end", func(ctx context.Context) error { return r.endToEnd(ctx, false) }},
		{5, "backlog drain", r.backlogDrain},
		{6, "slow backend", r.slowBackend},
		{7, "flaky backend", func(ctx context.Context) error { return r.endToEnd(ctx, true) }},
		{8, "memory vs backlog", r.memoryBacklog},
		{9, "connection flood", r.connectionFlood},
	}
	for _, ph := range phases {
		if !cfg.runs(ph.n) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		log.Info("phase", "n", ph.n, "name", ph.name)
		t := time.Now()
		if err := ph.run(ctx); err != nil {
			r.fail("%d. %s: %v", ph.n, ph.name, err)
		}
		for _, p := range r.running {
			p.Kill()
		}
		r.running = nil
		log.Info("phase done", "n", ph.n, "seconds", time.Since(t).Round(100*time.Millisecond).Seconds())
	}
	r.res.Seconds = time.Since(started).Seconds()
	r.res.Noise = noise(r.res)
	r.res.Figures = figures(r.res)
	if ctx.Err() != nil {
		r.fail("interrupted: %v", ctx.Err())
	}
	_ = os.RemoveAll(r.binDir)
	if len(r.res.Failures) == 0 {
		_ = os.RemoveAll(tmp)
	} else {
		log.Warn("service logs kept", "dir", r.logDir)
	}
	return r.res, nil
}

func (r *Runner) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Error("phase failed", "failure", msg)
	r.res.Failures = append(r.res.Failures, msg)
}

// meter starts measuring the CPU of the broker, this process and ps.
func (r *Runner) meter(ps ...*procs.Process) *procs.Meter {
	pids := map[string]int{"bench": os.Getpid(), "sink": r.sink.PID()}
	if r.broker != 0 {
		pids["broker"] = r.broker
	}
	for _, p := range ps {
		pids[p.Name] = p.PID()
	}
	return procs.StartMeter(pids)
}

// env returns the services' environment for a topology prefix.
func (r *Runner) env(prefix string) map[string]string {
	return map[string]string{
		"AMQP_URL":               r.cfg.AMQPURL,
		"TOPOLOGY_PREFIX":        prefix,
		"RETRY_INITIAL_INTERVAL": r.cfg.RetryInitial.D().String(),
		"LOG_LEVEL":              "warn",
		"LOG_FORMAT":             "json",
		"CATERING_SERVICE_EP":    r.sink.URL(),
		// Events are on by default: the ingress's index in the run's
		// directory, one per topology (the default is per prefix in $TMPDIR).
		"INGRESS_INDEX_PATH": filepath.Join(r.logDir, prefix+".index.db"),
	}
}

// topology resolves the topology the services will declare for prefix, from
// the same variables through the same loader, so declaring it here first
// cannot conflict with them.
func (r *Runner) topology(prefix string) *topology.Topology {
	env := r.env(prefix)
	return topology.New(topology.LoadConfig(config.NewLoader(func(k string) string { return env[k] })))
}

// prefix names a phase's topology; the run id keeps runs apart.
func (r *Runner) prefix(phase string) string { return r.runID + "." + phase }

func (r *Runner) startIngress(ctx context.Context, prefix string) (*procs.Process, error) {
	env := r.env(prefix)
	for k, v := range r.cfg.IngressEnv {
		env[k] = v
	}
	p, err := procs.Start(ctx, r.binDir, r.logDir, procs.Spec{
		Name: "ingress", Env: env,
		AddrVar: "INGRESS_ADDR", AddrFileVar: "INGRESS_ADDR_FILE", ReadyPath: "/readyz",
		AdminAddrVar: "INGRESS_ADMIN_ADDR", AdminAddrFileVar: "INGRESS_ADMIN_ADDR_FILE",
	}, memSample)
	if err != nil {
		return nil, err
	}
	r.running = append(r.running, p)
	return p, nil
}

func (r *Runner) startForwarder(ctx context.Context, prefix string, concurrency int) (*procs.Process, error) {
	env := r.env(prefix)
	for k, v := range r.cfg.ForwarderEnv {
		env[k] = v
	}
	env["FORWARDER_CONCURRENCY"] = strconv.Itoa(concurrency)
	if f := r.cfg.PrefetchFactor; f > 0 {
		env["FORWARDER_PREFETCH"] = strconv.Itoa(int(math.Ceil(f * float64(concurrency))))
	}
	p, err := procs.Start(ctx, r.binDir, r.logDir, procs.Spec{
		Name: "forwarder", Env: env,
		AddrVar: "FORWARDER_ADMIN_ADDR", AddrFileVar: "FORWARDER_ADMIN_ADDR_FILE", ReadyPath: "/readyz",
	}, memSample)
	if err != nil {
		return nil, err
	}
	r.running = append(r.running, p)
	return p, nil
}

// stop stops p gracefully and records its peak RSS for phase.
func (r *Runner) stop(p *procs.Process, phase string) error {
	m, err := r.stopUnrecorded(p)
	r.res.Memory.Peaks = append(r.res.Memory.Peaks, Peak{Phase: phase, Service: p.Name, MiB: mib(m.Peak)})
	return err
}

// stopUnrecorded stops p gracefully, for a phase that reports its memory
// against a target of its own.
func (r *Runner) stopUnrecorded(p *procs.Process) (procs.Mem, error) {
	for i, q := range r.running {
		if q == p {
			r.running = append(r.running[:i], r.running[i+1:]...)
			break
		}
	}
	return p.Stop()
}

// declare declares prefix's topology and returns a function that deletes it.
func (r *Runner) declare(prefix string) (*topology.Topology, func(), error) {
	topo := r.topology(prefix)
	if err := topo.Declare(r.conn); err != nil {
		return nil, nil, fmt.Errorf("declare topology: %w", err)
	}
	return topo, func() { r.deleteTopology(topo) }, nil
}

func (r *Runner) deleteTopology(topo *topology.Topology) {
	if err := topo.Delete(r.conn); err != nil {
		r.log.Warn("clean-up", "err", err)
	}
}

// fill publishes n messages to topo's main queue the way the ingress does,
// on a connection of its own.
func (r *Runner) fill(ctx context.Context, topo *topology.Topology, n int, ids string) error {
	conn, err := amqp.Dial(r.cfg.AMQPURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	t := time.Now()
	res, err := rawamqp.Publish(ctx, conn, rawamqp.PublishOptions{
		Exchange: topo.Exchange, Key: topo.Queue,
		Channels: r.cfg.BrokerChannels, Window: r.cfg.BrokerWindow, Count: n,
		Message: r.message(ids),
	})
	if err != nil {
		return fmt.Errorf("fill %s: %w", topo.Queue, err)
	}
	r.log.Info("filled", "queue", topo.Queue, "messages", res.Confirmed, "seconds", time.Since(t).Seconds())
	return nil
}

func (r *Runner) message(ids string) rawamqp.Message {
	return func(i int) (string, []byte) {
		id := ids + "-" + strconv.Itoa(i)
		return id, r.payload.Body(id)
	}
}

// scrape reads one sample, e.g. `relay_forwarder_circuit_transitions_total{to="open"}`,
// from the Prometheus text a service serves at http://addr/metrics; ok is
// false when the service does not export it.
func scrape(addr, sample string) (v float64, ok bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), sample+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func machine(ctx context.Context, repo string, conn *amqp.Connection) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if v, ok := conn.Properties["version"].(string); ok {
		m.Broker = "RabbitMQ " + v
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = repo
	cmd.Stderr = io.Discard
	if out, err := cmd.Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errNoMax = errors.New("needs phase 2 (ingress max) in the same run, or -assume-max")
