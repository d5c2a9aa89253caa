// Command latency measures relay's latencies at a fixed rate beside the
// Watermill peer and the minimal build (../shared/peers): accept latency
// (scheduled send → the 202) and accept-to-delivered latency (scheduled send
// → the backend receives it), with the forwarder running, open model
// (requests leave on schedule whatever the answers; every latency counts
// from the scheduled time, so no coordinated omission).
//
//	make build && cd bench && go run ./cmd/latency                 # 1,000/s for 30 s, relay, peer, minimal
//	cd bench && go run ./cmd/latency -systems relay,peer -rounds 3 -duration 20s
//
// Each system runs, in alternating order round by round, on a fresh vhost
// (rabbitmqctl add_vhost … delete_vhost, as compare.sh does) with its
// ingress and forwarder started from their own command lines: relay's
// bin/ingress and bin/forwarder with compare.sh's environment, the peers
// built from -peers (never copied). A recording backend in this process
// matches every delivery to its request by the body's passengerId, so lost
// (accepted, never delivered) and duplicates are counted per id. The
// machine's steal and the CPU of other processes over each run are read from
// /proc/stat: on a shared machine they say how far to trust the figures.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/railco/relay/bench/internal/load"
	"github.com/railco/relay/bench/internal/openloop"
	"github.com/railco/relay/bench/internal/procs"
	"github.com/railco/relay/bench/internal/stats"
)

// Issue 11's targets at 1,000 registrations/s.
const (
	targetAcceptP99    = 25.0  // ms
	targetDeliveredP99 = 100.0 // ms
)

type options struct {
	bin, peers, repo, seed, amqp, jsonOut string
	systems                               []string
	rounds, rate, conns                   int
	duration, warmup, wait, grace         time.Duration
	key                                   bool
}

func main() {
	var o options
	var systems string
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	fs.StringVar(&o.bin, "bin", "../bin", "directory holding relay's ingress and forwarder (make build)")
	fs.StringVar(&o.peers, "peers", "../../shared/peers", "the peers' directory (watermill/, minimal/); built from there, never copied")
	fs.StringVar(&o.repo, "repo", "..", "root of the relay repository")
	fs.StringVar(&o.seed, "seed", "test/e2e/testdata/seed.json", "payload, relative to -repo; its passengerId is made unique per request")
	fs.StringVar(&o.amqp, "amqp", "amqp://guest:guest@127.0.0.1:5672", "RabbitMQ URL without a vhost; each run gets a fresh one")
	fs.StringVar(&systems, "systems", "relay,peer,minimal", "systems to measure, in the first round's order")
	fs.IntVar(&o.rounds, "rounds", 1, "rounds; the order of systems reverses every other round")
	fs.IntVar(&o.rate, "rate", 1000, "registrations per second")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measured sending time per run (rate × duration registrations)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "sent before the measured time at the same rate, left out of the latencies (still checked for loss)")
	fs.IntVar(&o.conns, "connections", 512, "client connection pool, as the fixed-rate phases of relaybench")
	fs.DurationVar(&o.wait, "wait", 60*time.Second, "how long to wait for the last deliveries before counting the rest lost")
	fs.DurationVar(&o.grace, "grace", 2*time.Second, "how long to keep listening after the last delivery, for duplicates")
	fs.BoolVar(&o.key, "idempotency-key", false, "send each passengerId as the Idempotency-Key header too (compare.sh's loadgen does not)")
	fs.StringVar(&o.jsonOut, "json", "", "also write every run's figures to this file")
	_ = fs.Parse(os.Args[1:])
	o.systems = splitList(systems)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

// runResult is one system's run.
type runResult struct {
	System string          `json:"system"`
	Round  int             `json:"round"`
	Rate   int             `json:"rate"`
	Report openloop.Report `json:"report"`
	Sink   openloop.Counts `json:"sink"`
	CPU    procs.Usage     `json:"cpu"`
	Err    string          `json:"error,omitempty"`
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	for _, s := range o.systems {
		if s != "relay" && s != "peer" && s != "minimal" {
			return fmt.Errorf("unknown system %q (relay, peer, minimal)", s)
		}
	}
	seed, err := os.ReadFile(filepath.Join(o.repo, o.seed))
	if err != nil {
		return fmt.Errorf("read seed payload: %w", err)
	}
	payload, err := load.NewPayload(seed)
	if err != nil {
		return fmt.Errorf("seed payload: %w", err)
	}
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		return errors.New("rabbitmqctl not found: fresh vhosts need it")
	}
	tmp, err := os.MkdirTemp("", "relay-latency-")
	if err != nil {
		return err
	}
	logDir := filepath.Join(tmp, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	sys, err := systemsToRun(ctx, o, tmp)
	if err != nil {
		return err
	}
	rec, err := openloop.StartRecorder()
	if err != nil {
		return err
	}
	defer rec.Close()
	brokerPID := 0
	if u, err := url.Parse(o.amqp); err == nil {
		port, _ := strconv.Atoi(u.Port())
		if pid, err := procs.ListenerPID(cmp.Or(port, 5672)); err == nil {
			brokerPID = pid
		}
	}
	runID := randomHex(3)

	var all []runResult
	failed := false
	for r := 1; r <= o.rounds; r++ {
		order := slices.Clone(sys)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, s := range order {
			if ctx.Err() != nil {
				break
			}
			res := measure(ctx, o, s, r, runID, payload, rec, brokerPID, logDir)
			if res.Err != "" {
				failed = true
				fmt.Fprintf(os.Stderr, "latency: %s round %d: %s (logs in %s)\n", s.name, r, res.Err, logDir)
			}
			rp := res.Report
			fmt.Fprintf(os.Stderr, "%-7s round %d: sent %d accepted %d errors %d | accept p50 %.1f p99 %.1f ms | delivered p50 %.1f p99 %.1f ms | lost %d duplicates %d | steal %.2f other %.2f cores\n",
				s.name, r, rp.Sent, rp.Accepted, rp.Errors, rp.Accept.P50, rp.Accept.P99, rp.Delivered.P50, rp.Delivered.P99,
				rp.Lost, res.Sink.Duplicates, res.CPU.Steal, res.CPU.Other)
			all = append(all, res)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	table(stdout, o, all)
	if o.jsonOut != "" {
		doc := map[string]any{
			"started": time.Now().UTC(), "cpus": runtime.NumCPU(), "go": runtime.Version(),
			"rate": o.rate, "duration": o.duration.String(), "warmup": o.warmup.String(),
			"connections": o.conns, "runs": all,
		}
		b, _ := json.MarshalIndent(doc, "", " ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "results:", o.jsonOut)
	}
	if failed {
		return fmt.Errorf("a run failed or lost registrations; service logs kept in %s", logDir)
	}
	_ = os.RemoveAll(tmp)
	return nil
}

// system says how to start one system's ingress and forwarder.
type system struct {
	name string
	// ingress and forwarder return the command for a broker URL; addr and
	// admin are free loopback addresses, backend the recorder's URL.
	ingress   func(amqpURL, addr, admin string) *exec.Cmd
	forwarder func(amqpURL, admin, backend string) *exec.Cmd
	readyPath string // polled on the ingress until 200; "" waits for the port only
}

func systemsToRun(ctx context.Context, o options, tmp string) ([]system, error) {
	var out []system
	for _, name := range o.systems {
		switch name {
		case "relay":
			ing, fwd := filepath.Join(o.bin, "ingress"), filepath.Join(o.bin, "forwarder")
			for _, f := range []string{ing, fwd} {
				if _, err := os.Stat(f); err != nil {
					return nil, fmt.Errorf("%s: %w (run make build)", f, err)
				}
			}
			out = append(out, system{
				name: "relay", readyPath: "/readyz",
				ingress: func(u, addr, admin string) *exec.Cmd {
					// Events are on by default: an index file of its own for
					// each start (each round has a broker topology of its own),
					// never the default one a local make run may hold.
					index := filepath.Join(tmp, "index-"+strings.NewReplacer(":", "-", ".", "-").Replace(addr)+".db")
					_ = os.Remove(index)
					return command(ing, nil, "AMQP_URL="+u, "INGRESS_ADDR="+addr, "INGRESS_ADMIN_ADDR="+admin, "LOG_LEVEL=warn", "INGRESS_INDEX_PATH="+index)
				},
				// compare.sh's environment: its retry schedule, warn logs.
				forwarder: func(u, admin, backend string) *exec.Cmd {
					return command(fwd, nil, "AMQP_URL="+u, "FORWARDER_ADMIN_ADDR="+admin, "CATERING_SERVICE_EP="+backend,
						"LOG_LEVEL=warn", "RETRY_INITIAL_INTERVAL=100ms", "RETRY_MULTIPLIER=2", "RETRY_MAX_INTERVAL=2s", "MAX_DELIVERY_ATTEMPTS=4")
				},
			})
		case "peer", "minimal":
			dir := map[string]string{"peer": "watermill", "minimal": "minimal"}[name]
			src := filepath.Join(o.peers, dir)
			if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
				fmt.Fprintf(os.Stderr, "latency: %s not found in %s: skipped (the peers live beside the project, in ../shared/peers)\n", name, o.peers)
				continue
			}
			exe := filepath.Join(tmp, name)
			build := exec.CommandContext(ctx, "go", "build", "-o", exe, ".")
			build.Dir = src
			build.Env = append(os.Environ(), "GOWORK=off")
			if b, err := build.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("build %s: %w\n%s", src, err, b)
			}
			// compare.sh's command lines.
			s := system{name: name}
			if name == "peer" {
				s.ingress = func(u, addr, _ string) *exec.Cmd {
					return command(exe, []string{"ingress", "-addr", addr, "-amqp", u, "-queue-type", "quorum", "-channels", "64"})
				}
				s.forwarder = func(u, _, backend string) *exec.Cmd {
					return command(exe, []string{"forwarder", "-amqp", u, "-backend", backend, "-queue-type", "quorum", "-handlers", "32", "-prefetch", "4"})
				}
			} else {
				s.ingress = func(u, addr, _ string) *exec.Cmd {
					return command(exe, []string{"ingress", "-addr", addr, "-amqp", u})
				}
				s.forwarder = func(u, _, backend string) *exec.Cmd {
					return command(exe, []string{"forwarder", "-amqp", u, "-backend", backend})
				}
			}
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no system to measure")
	}
	return out, nil
}

func command(exe string, args []string, env ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	return cmd
}

// measure runs one system once on a fresh vhost; failures land in Err.
func measure(ctx context.Context, o options, s system, round int, runID string, payload *load.Payload, rec *openloop.Recorder, brokerPID int, logDir string) (res runResult) {
	res = runResult{System: s.name, Round: round, Rate: o.rate}
	fail := func(err error) runResult { res.Err = err.Error(); return res }

	vhost := fmt.Sprintf("latency-%d-%s-%d", os.Getpid(), s.name, round)
	amqpURL, err := addVhost(ctx, o.amqp, vhost)
	defer deleteVhost(vhost)
	if err != nil {
		return fail(err)
	}
	addr, admin, fwdAdmin := freeAddr(), freeAddr(), freeAddr()
	ing, err := start(s.ingress(amqpURL, addr, admin), filepath.Join(logDir, fmt.Sprintf("%s-%d-ingress.log", s.name, round)))
	if err != nil {
		return fail(err)
	}
	defer ing.stop()
	if err := waitReady(ctx, ing, addr, s.readyPath); err != nil {
		return fail(fmt.Errorf("ingress: %w", err))
	}
	fwd, err := start(s.forwarder(amqpURL, fwdAdmin, rec.URL()), filepath.Join(logDir, fmt.Sprintf("%s-%d-forwarder.log", s.name, round)))
	if err != nil {
		return fail(err)
	}
	defer fwd.stop()

	target := "http://" + addr + "/catering/register"
	ids := fmt.Sprintf("lat-%s-%s-%d", runID, s.name, round)
	// One registration through the whole path first: the forwarder is
	// consuming, and the backend's connections are open, before the clock runs.
	rec.Reset()
	probe := ids + "-probe"
	if err := post(ctx, target, payload.Body(probe)); err != nil {
		return fail(fmt.Errorf("probe: %w", err))
	}
	if err := rec.Wait(ctx, []string{probe}, 30*time.Second); err != nil {
		return fail(fmt.Errorf("probe not delivered: %w", err))
	}
	rec.Reset()

	pids := map[string]int{"ingress": ing.cmd.Process.Pid, "forwarder": fwd.cmd.Process.Pid, "bench": os.Getpid()}
	if brokerPID != 0 {
		pids["broker"] = brokerPID
	}
	meter := procs.StartMeter(pids)
	sent, err := openloop.Run(ctx, openloop.Options{
		URL: target, Body: payload.Body, IDs: ids, Rate: o.rate, Duration: o.warmup + o.duration,
		Connections: o.conns, IdempotencyKey: o.key,
	})
	if err != nil {
		return fail(err)
	}
	var accepted []string
	for _, x := range sent.Sends {
		if x.Accepted() {
			accepted = append(accepted, x.ID)
		}
	}
	waitErr := rec.Wait(ctx, accepted, o.wait)
	res.CPU = meter.Stop()
	// Late duplicates (a redelivery after a lost ack) would come now.
	select {
	case <-time.After(o.grace):
	case <-ctx.Done():
	}
	res.Sink = rec.Counts()
	res.Report = openloop.Match(sent, rec.Arrivals(), o.warmup)
	var errs []error
	if waitErr != nil {
		errs = append(errs, waitErr)
	}
	if res.Report.Lost > 0 || res.Report.Errors > 0 {
		errs = append(errs, fmt.Errorf("lost %d, error answers %d %v", res.Report.Lost, res.Report.Errors, res.Report.ErrorsBy))
	}
	errs = append(errs, fwd.stop(), ing.stop())
	if err := errors.Join(errs...); err != nil {
		res.Err = err.Error()
	}
	return res
}

// addVhost creates vhost with full permissions for the URL's user and
// returns the URL that selects it.
func addVhost(ctx context.Context, base, vhost string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse -amqp: %w", err)
	}
	user := cmp.Or(u.User.Username(), "guest")
	for _, args := range [][]string{
		{"-q", "add_vhost", vhost},
		{"-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"},
	} {
		if b, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(b))
		}
	}
	u.Path = "/" + vhost
	return u.String(), nil
}

func deleteVhost(vhost string) {
	if b, err := exec.Command("rabbitmqctl", "-q", "delete_vhost", vhost).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "latency: delete vhost %s: %v: %s\n", vhost, err, bytes.TrimSpace(b))
	}
}

// proc is a started service.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	stopped bool
}

func start(cmd *exec.Cmd, logFile string) (*proc, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stopTimeout bounds a graceful stop; both systems finish in-flight work first.
const stopTimeout = 15 * time.Second

// stop sends SIGTERM and waits, killing after stopTimeout; a process that
// had already exited is an error. Idempotent.
func (p *proc) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	select {
	case <-p.done:
		return fmt.Errorf("%s exited early: %v", filepath.Base(p.cmd.Path), p.err)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM", filepath.Base(p.cmd.Path), stopTimeout)
	}
}

// waitReady polls addr (readyPath, or a TCP connect) until it answers; no
// event announces readiness.
func waitReady(ctx context.Context, p *proc, addr, readyPath string) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		if readyPath != "" {
			if resp, err := client.Get("http://" + addr + readyPath); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		} else if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready at %s within 30s", addr)
		}
	}
}

func post(ctx context.Context, target string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// table prints every run and, over several rounds, each system's medians,
// as Markdown for docs/BENCHMARKS.md.
func table(w io.Writer, o options, all []runResult) {
	fmt.Fprintf(w, "\n%d registrations/s for %s (+%s warm-up), open model, %d CPUs\n\n", o.rate, o.duration, o.warmup, runtime.NumCPU())
	fmt.Fprintln(w, "| system | round | sent | accept p50 | accept p99 | accept-to-delivered p50 | accept-to-delivered p99 | lost | duplicates | errors | steal (cores) | other processes (cores) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range all {
		p := r.Report
		fmt.Fprintf(w, "| %s | %d | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d | %d | %d | %.2f | %.2f |\n",
			r.System, r.Round, p.Sent, p.Accept.P50, p.Accept.P99, p.Delivered.P50, p.Delivered.P99,
			p.Lost, r.Sink.Duplicates, p.Errors, r.CPU.Steal, r.CPU.Other)
	}
	if o.rounds > 1 {
		fmt.Fprintf(w, "\n| median of %d rounds | accept p50 | accept p99 | accept-to-delivered p50 | accept-to-delivered p99 | lost (sum) | duplicates (sum) |\n", o.rounds)
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
		for _, s := range o.systems {
			var a50, a99, d50, d99 []float64
			lost, dups := 0, 0
			for _, r := range all {
				if r.System != s {
					continue
				}
				a50, a99 = append(a50, r.Report.Accept.P50), append(a99, r.Report.Accept.P99)
				d50, d99 = append(d50, r.Report.Delivered.P50), append(d99, r.Report.Delivered.P99)
				lost, dups = lost+r.Report.Lost, dups+r.Sink.Duplicates
			}
			if len(a50) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d | %d |\n", s, median(a50), median(a99), median(d50), median(d99), lost, dups)
		}
	}
	fmt.Fprintf(w, "\ntargets (issue 11): accept p99 <= %.0f ms, accept-to-delivered p99 <= %.0f ms, lost 0\n", targetAcceptP99, targetDeliveredP99)
	for _, r := range all {
		if r.System != "relay" {
			continue
		}
		ok := r.Report.Accept.P99 <= targetAcceptP99 && r.Report.Delivered.P99 <= targetDeliveredP99 && r.Report.Lost == 0
		fmt.Fprintf(w, "relay round %d: %s\n", r.Round, map[bool]string{true: "targets met", false: "TARGET MISSED"}[ok])
	}
}

func median(v []float64) float64 {
	d := make([]time.Duration, len(v))
	for i, x := range v {
		d[i] = time.Duration(x * 1e6)
	}
	slices.Sort(d)
	return float64(stats.Percentile(d, 50)) / 1e6
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
