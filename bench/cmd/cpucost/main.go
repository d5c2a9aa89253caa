// Command cpucost measures what one message costs relay in CPU time: the
// ingress's CPU per accepted registration and the forwarder's CPU per
// delivery, with the two services running together under a steady
// closed-loop load, and the forwarder's CPU per attempt when the backend
// fails a share of them (retry-tier publishes included).
//
// CPU time is utime+stime from /proc/<pid>/stat of each service, read just
// before the load starts and again when the last delivery (or attempt)
// arrived; the machine's steal and the CPU of everything else are read from
// /proc/stat over the same window, because a noisy machine inflates every
// figure. Throughput is printed, but on a shared machine it is not the
// figure to trust: CPU per message is.
//
//	cd bench && go run ./cmd/cpucost                        # ../bin, 3 rounds of 20000
//	cd bench && go run ./cmd/cpucost -bin /tmp/old -rounds 1
//	cd bench && go run ./cmd/cpucost -profile /tmp/prof     # also CPU profiles of both services (pprof on)
//
// Each round starts both services from -bin on a topology of its own
// (deleted afterwards), warms them up, then runs the phases: steady (the
// backend answers 200) and flaky (it answers 500 to -fail of all attempts,
// like ../shared/peers/loadgen's sink). The retry schedule is compare.sh's:
// 100 ms, ×2, at most 2 s, 4 attempts.
package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/bench/internal/load"
	"github.com/railco/relay/bench/internal/procs"
)

type options struct {
	bin, repo, seed, amqpURL string
	n, c, warmup, rounds     int
	rate                     int
	fail                     float64
	key                      bool
	concurrency              int
	profileDir               string
	profileSeconds           int
	jsonOut                  string
	idle                     time.Duration
	timeout                  time.Duration
	phases                   string
	env                      string
}

func main() {
	var o options
	fs := flag.NewFlagSet("cpucost", flag.ExitOnError)
	fs.StringVar(&o.bin, "bin", "../bin", "directory with the ingress and forwarder binaries (make build); several, comma-separated, are measured in alternating rounds (A/B); DIR+KEY=VALUE+… runs DIR's binaries with those settings (../bin+EVENTS=off,../bin+EVENTS=on)")
	fs.StringVar(&o.repo, "repo", "..", "root of the relay repository, for -seed")
	fs.StringVar(&o.seed, "seed", "test/e2e/testdata/seed.json", "payload, relative to -repo; its passengerId is made unique per request")
	fs.StringVar(&o.amqpURL, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	fs.IntVar(&o.n, "n", 20000, "registrations per measured phase")
	fs.IntVar(&o.c, "c", 128, "clients (one keep-alive connection each)")
	fs.IntVar(&o.rate, "rate", 0, "registrations per second, spread over the clients; 0: closed loop (each client sends its next as soon as it has an answer)")
	fs.IntVar(&o.warmup, "warmup", 2000, "registrations sent (and delivered) before measuring")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; medians are reported")
	fs.Float64Var(&o.fail, "fail", 0.2, "share of attempts the backend answers 500 in the flaky phase")
	fs.BoolVar(&o.key, "key", false, "send an Idempotency-Key (else the ingress makes a UUIDv7, as with compare.sh's loadgen)")
	fs.IntVar(&o.concurrency, "forwarder-concurrency", 0, "FORWARDER_CONCURRENCY (0: the forwarder's default)")
	fs.StringVar(&o.profileDir, "profile", "", "directory: turn INGRESS_PPROF/FORWARDER_PPROF on and save CPU profiles of each phase there (profiling costs CPU: do not mix with the figures)")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 5, "length of each CPU profile, taken from the start of the phase's load")
	fs.StringVar(&o.jsonOut, "json", "", "also write the rounds and medians to this file")
	fs.DurationVar(&o.idle, "idle", 3*time.Second, "a phase ends when no attempt arrived for this long (or everything was delivered)")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "longest a phase may take")
	fs.StringVar(&o.phases, "phases", "steady,flaky", "phases to run, in order")
	fs.StringVar(&o.env, "env", "", "more environment for both services: KEY=VALUE pairs, comma-separated (e.g. EVENTS=off, to measure what events cost)")
	_ = fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "cpucost:", err)
		os.Exit(1)
	}
}

// phase is what one phase of one round measured.
type phase struct {
	Name      string  `json:"name"`
	Bin       string  `json:"bin"`
	Round     int     `json:"round"`
	Accepted  int     `json:"accepted"`
	Refused   int     `json:"refused"`
	Delivered int     `json:"delivered"`
	Attempts  int     `json:"attempts"`
	Failed    int     `json:"answered_500"`
	Seconds   float64 `json:"seconds"`
	SendSecs  float64 `json:"send_seconds"`
	// CPU seconds of each process over the window.
	IngressCPU   float64 `json:"ingress_cpu_s"`
	ForwarderCPU float64 `json:"forwarder_cpu_s"`
	BrokerCPU    float64 `json:"broker_cpu_s"`
	// In cores over the window: the machine's steal, and CPU used by
	// processes other than the two services, the broker and this one.
	Steal float64 `json:"steal_cores"`
	Other float64 `json:"other_cores"`
	// Idle: cores nobody used (the machine's, less busy and steal). A
	// closed loop that leaves cores idle is bound by latency, not by CPU.
	Idle float64 `json:"idle_cores"`
	// CPU of this process (load generator and recording backend).
	BenchCPU float64 `json:"bench_cpu_s"`
	// µs of CPU per message.
	IngressPerAccepted   float64 `json:"ingress_us_per_accepted"`
	ForwarderPerDelivery float64 `json:"forwarder_us_per_delivery"`
	ForwarderPerAttempt  float64 `json:"forwarder_us_per_attempt"`
	BrokerPerAccepted    float64 `json:"broker_us_per_accepted"`
	// System calls per message: reads and writes (sockets included).
	IngressReads  float64 `json:"ingress_reads_per_accepted"`
	IngressWrites float64 `json:"ingress_writes_per_accepted"`
	// Bytes written to storage per accepted registration (/proc/PID/io
	// write_bytes): the ingress's index, the broker's queues and stream.
	IngressDiskBytes   float64 `json:"ingress_disk_bytes_per_accepted"`
	BrokerDiskBytes    float64 `json:"broker_disk_bytes_per_accepted"`
	ForwarderReads     float64 `json:"forwarder_reads_per_attempt"`
	ForwarderWrites    float64 `json:"forwarder_writes_per_attempt"`
	AcceptedPerSecond  float64 `json:"accepted_per_s"`
	DeliveredPerSecond float64 `json:"delivered_per_s"`
	// While the load was sending, the forwarder was delivering beside the
	// ingress on the same cores: what it delivered by the last answer, and
	// the cores each process used until then. A closed loop's intake is
	// what the ingress gets of the machine while the forwarder takes its
	// share, so the two together tell what a build does with the machine.
	DeliveredSending       int     `json:"delivered_while_sending"`
	DeliveredSendingPerSec float64 `json:"delivered_while_sending_per_s"`
	IngressCoresSending    float64 `json:"ingress_cores_while_sending"`
	ForwarderCoresSending  float64 `json:"forwarder_cores_while_sending"`
	BrokerCoresSending     float64 `json:"broker_cores_while_sending"`
}

func run(ctx context.Context, o options) error {
	seed, err := os.ReadFile(filepath.Join(o.repo, o.seed))
	if err != nil {
		return err
	}
	payload, err := load.NewPayload(seed)
	if err != nil {
		return err
	}
	bins := splitList(o.bin)
	for _, bin := range bins {
		for _, name := range []string{"ingress", "forwarder"} {
			if _, err := os.Stat(filepath.Join(binDir(bin), name)); err != nil {
				return fmt.Errorf("%w (run make build)", err)
			}
		}
	}
	conn, err := amqp.Dial(o.amqpURL)
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	brokerPID := 0
	if uri, err := amqp.ParseURI(o.amqpURL); err == nil {
		brokerPID, _ = procs.ListenerPID(uri.Port)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	logDir, err := os.MkdirTemp("", "cpucost-")
	if err != nil {
		return err
	}
	s := newSink()
	defer s.close()

	var all []phase
	for r := 1; r <= o.rounds && ctx.Err() == nil; r++ {
		order := slices.Clone(bins)
		if r%2 == 0 {
			slices.Reverse(order) // alternate, so neither build always runs first
		}
		for _, bin := range order {
			got, err := round(ctx, o, bin, r, conn, brokerPID, payload, s, logDir)
			all = append(all, got...)
			if err != nil {
				return fmt.Errorf("round %d of %s: %w (logs in %s)", r, bin, err, logDir)
			}
		}
	}
	_ = os.RemoveAll(logDir)
	report(os.Stdout, o, all)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"n": o.n, "c": o.c, "fail": o.fail, "bin": o.bin, "phases": all}, "", " ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func round(ctx context.Context, o options, bin string, r int, conn *amqp.Connection, brokerPID int, payload *load.Payload, s *sink, logDir string) ([]phase, error) {
	prefix := "cpucost." + randomHex(4)
	env := map[string]string{
		"AMQP_URL":               o.amqpURL,
		"TOPOLOGY_PREFIX":        prefix,
		"LOG_LEVEL":              "warn",
		"LOG_FORMAT":             "json",
		"CATERING_SERVICE_EP":    s.url,
		"RETRY_INITIAL_INTERVAL": "100ms",
		"RETRY_MULTIPLIER":       "2",
		"RETRY_MAX_INTERVAL":     "2s",
		"MAX_DELIVERY_ATTEMPTS":  "4",
		"INGRESS_INDEX_PATH":     filepath.Join(logDir, prefix+".index.db"),
	}
	for kv := range strings.SplitSeq(o.env, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			env[k] = v
		}
	}
	for kv := range strings.SplitSeq(bin, "+") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v // the variant's own settings (-bin DIR+KEY=VALUE)
		}
	}
	defer os.Remove(env["INGRESS_INDEX_PATH"])
	topo := topology.New(topology.LoadConfig(config.NewLoader(func(k string) string { return env[k] })))
	defer func() { _ = topo.Delete(conn) }()

	ingEnv, fwdEnv := clone(env), clone(env)
	if o.profileDir != "" {
		ingEnv["INGRESS_PPROF"], fwdEnv["FORWARDER_PPROF"] = "on", "on"
	}
	if o.concurrency > 0 {
		fwdEnv["FORWARDER_CONCURRENCY"] = strconv.Itoa(o.concurrency)
	}
	// The forwarder first: it declares the topology and puts its policy.
	fwd, err := procs.Start(ctx, binDir(bin), logDir, procs.Spec{
		Name: "forwarder", Env: fwdEnv,
		AddrVar: "FORWARDER_ADMIN_ADDR", AddrFileVar: "FORWARDER_ADMIN_ADDR_FILE", ReadyPath: "/readyz",
	}, time.Second)
	if err != nil {
		return nil, err
	}
	defer fwd.Kill()
	ing, err := procs.Start(ctx, binDir(bin), logDir, procs.Spec{
		Name: "ingress", Env: ingEnv,
		AddrVar: "INGRESS_ADDR", AddrFileVar: "INGRESS_ADDR_FILE", ReadyPath: "/readyz",
		AdminAddrVar: "INGRESS_ADMIN_ADDR", AdminAddrFileVar: "INGRESS_ADMIN_ADDR_FILE",
	}, time.Second)
	if err != nil {
		return nil, err
	}
	defer ing.Kill()

	target := "http://" + ing.Addr + "/catering/register"
	// Warm up: connections, pools, goroutine stacks and the heap grow to
	// their working size before anything is measured.
	s.reset(0)
	if _, err := drive(ctx, o, target, payload, prefix+".warm", o.warmup); err != nil {
		return nil, err
	}
	if err := s.waitIdle(ctx, o.warmup, o.idle, o.timeout); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	var out []phase
	for i, name := range splitPhases(o.phases) {
		failRate := 0.0
		if name == "flaky" {
			failRate = o.fail
		} else if name != "steady" {
			return out, fmt.Errorf("unknown phase %q", name)
		}
		s.reset(failRate)
		pids := map[string]int{"ingress": ing.PID(), "forwarder": fwd.PID(), "bench": os.Getpid()}
		if brokerPID != 0 {
			pids["broker"] = brokerPID
		}
		start := sample(pids)
		var profiles sync.WaitGroup
		if o.profileDir != "" {
			for _, p := range []struct{ name, addr string }{{"ingress", ing.AdminAddr}, {"forwarder", fwd.AdminAddr}} {
				file := filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-%s-r%d.pprof", label(bin), p.name, name, r))
				profiles.Go(func() {
					if err := fetchProfile(ctx, p.addr, o.profileSeconds, file); err != nil {
						fmt.Fprintf(os.Stderr, "cpucost: profile %s: %v\n", p.name, err)
					}
				})
			}
		}
		sent, err := drive(ctx, o, target, payload, fmt.Sprintf("%s.%d", prefix, i), o.n)
		if err != nil {
			return out, err
		}
		mid, midCounts := sample(pids), s.counts()
		end, c, err := s.waitEnd(ctx, sent.accepted, o.idle, o.timeout, pids)
		profiles.Wait()
		if o.profileDir != "" {
			// Allocations since the start, warm-up and earlier phases included.
			for _, p := range []struct{ name, addr string }{{"ingress", ing.AdminAddr}, {"forwarder", fwd.AdminAddr}} {
				file := filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-%s-r%d.allocs", label(bin), p.name, name, r))
				if err := fetch(ctx, "http://"+p.addr+"/debug/pprof/allocs", file); err != nil {
					fmt.Fprintf(os.Stderr, "cpucost: allocs %s: %v\n", p.name, err)
				}
			}
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
		if ing.Exited() || fwd.Exited() {
			return out, fmt.Errorf("%s: a service exited; see %s", name, logDir)
		}
		out = append(out, measure(name, r, sent, c, start, end))
		out[len(out)-1].whileSending(midCounts, start, mid)
		p := &out[len(out)-1]
		p.Bin = bin
		fmt.Fprintf(os.Stderr, "%s round %d %-6s accepted %d (%.0f/s) delivered %d (%d while sending: %.0f/s; cores then: ingress %.2f, forwarder %.2f, broker %.2f) attempts %d: ingress %.1f µs/accepted (%.2f reads, %.2f writes), forwarder %.1f µs/delivery, %.1f µs/attempt (%.2f reads, %.2f writes); disk written per accepted: ingress %.0f B, broker %.0f B; steal %.2f, other %.2f cores\n",
			bin, r, name, p.Accepted, p.AcceptedPerSecond, p.Delivered, p.DeliveredSending, p.DeliveredSendingPerSec, p.IngressCoresSending, p.ForwarderCoresSending, p.BrokerCoresSending, p.Attempts, p.IngressPerAccepted, p.IngressReads, p.IngressWrites, p.ForwarderPerDelivery, p.ForwarderPerAttempt, p.ForwarderReads, p.ForwarderWrites, p.IngressDiskBytes, p.BrokerDiskBytes, p.Steal, p.Other)
	}
	if _, err := fwd.Stop(); err != nil {
		return out, err
	}
	if _, err := ing.Stop(); err != nil {
		return out, err
	}
	return out, nil
}

func splitPhases(s string) []string { return splitList(s) }

func splitList(s string) []string {
	var out []string
	for _, p := range bytes.Split([]byte(s), []byte(",")) {
		if p := string(bytes.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// snapshot is the CPU time of each process and of the machine at one moment.
type snapshot struct {
	at      time.Time
	cpu     map[string]time.Duration
	sys     map[string][3]int64 // read and write system calls, bytes written to storage (/proc/PID/io syscr, syscw, write_bytes)
	machine procs.Machine
}

func sample(pids map[string]int) snapshot {
	s := snapshot{at: time.Now(), cpu: map[string]time.Duration{}, sys: map[string][3]int64{}}
	for name, pid := range pids {
		s.cpu[name], _ = procs.CPUTime(pid)
		s.sys[name] = syscalls(pid)
	}
	s.machine, _ = procs.MachineCPU()
	return s
}

// syscalls returns the read and write system calls pid made so far, and
// the bytes it caused to be written to storage (page cache write-back
// included: the index's pages, the broker's files).
func syscalls(pid int) [3]int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return [3]int64{}
	}
	var out [3]int64
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, _ := bytes.Cut(line, []byte(": "))
		n, _ := strconv.ParseInt(string(v), 10, 64)
		switch string(k) {
		case "syscr":
			out[0] = n
		case "syscw":
			out[1] = n
		case "write_bytes":
			out[2] = n
		}
	}
	return out
}

func measure(name string, r int, sent sent, c counts, start, end snapshot) phase {
	wall := end.at.Sub(start.at).Seconds()
	d := func(k string) float64 { return (end.cpu[k] - start.cpu[k]).Seconds() }
	p := phase{
		Name: name, Round: r, Accepted: sent.accepted, Refused: sent.refused,
		Delivered: c.delivered, Attempts: c.requests, Failed: c.failed,
		Seconds: wall, SendSecs: sent.seconds,
		IngressCPU: d("ingress"), ForwarderCPU: d("forwarder"), BrokerCPU: d("broker"),
	}
	known := p.IngressCPU + p.ForwarderCPU + p.BrokerCPU + d("bench")
	busy := (end.machine.Busy - start.machine.Busy).Seconds()
	p.Other = max(busy-known, 0) / wall
	p.Steal = (end.machine.Steal - start.machine.Steal).Seconds() / wall
	p.BenchCPU = d("bench")
	p.Idle = max(float64(runtime.NumCPU())-busy/wall-p.Steal, 0)
	per := func(k string, i, n int) float64 {
		if n == 0 {
			return 0
		}
		return float64(end.sys[k][i]-start.sys[k][i]) / float64(n)
	}
	p.IngressReads, p.IngressWrites = per("ingress", 0, p.Accepted), per("ingress", 1, p.Accepted)
	p.IngressDiskBytes, p.BrokerDiskBytes = per("ingress", 2, p.Accepted), per("broker", 2, p.Accepted)
	p.ForwarderReads, p.ForwarderWrites = per("forwarder", 0, p.Attempts), per("forwarder", 1, p.Attempts)
	us := func(cpu float64, n int) float64 {
		if n == 0 {
			return 0
		}
		return cpu * 1e6 / float64(n)
	}
	p.IngressPerAccepted = us(p.IngressCPU, p.Accepted)
	p.BrokerPerAccepted = us(p.BrokerCPU, p.Accepted)
	p.ForwarderPerDelivery = us(p.ForwarderCPU, p.Delivered)
	p.ForwarderPerAttempt = us(p.ForwarderCPU, p.Attempts)
	p.AcceptedPerSecond = float64(p.Accepted) / sent.seconds
	p.DeliveredPerSecond = float64(p.Delivered) / wall
	return p
}

// whileSending adds what the sink saw by the load's last answer (c) and
// the processes' CPU from start to then.
func (p *phase) whileSending(c counts, start, mid snapshot) {
	secs := mid.at.Sub(start.at).Seconds()
	if secs <= 0 {
		return
	}
	cores := func(k string) float64 { return (mid.cpu[k] - start.cpu[k]).Seconds() / secs }
	p.DeliveredSending = c.delivered
	p.DeliveredSendingPerSec = float64(c.delivered) / secs
	p.IngressCoresSending, p.ForwarderCoresSending, p.BrokerCoresSending = cores("ingress"), cores("forwarder"), cores("broker")
}

// binDir is the directory of a -bin entry: DIR, or DIR+KEY=VALUE+… for a
// variant of the same binaries with settings of its own (EVENTS=on beside
// EVENTS=off, in alternating rounds).
func binDir(entry string) string {
	dir, _, _ := strings.Cut(entry, "+")
	return dir
}

// label names a -bin entry in file names: its directory's base and its
// settings.
func label(entry string) string {
	dir, rest, _ := strings.Cut(entry, "+")
	if rest == "" {
		return filepath.Base(dir)
	}
	return filepath.Base(dir) + "+" + strings.NewReplacer("=", "-", "+", "-").Replace(rest)
}

func report(w io.Writer, o options, all []phase) {
	load := "closed loop"
	if o.rate > 0 {
		load = fmt.Sprintf("%d/s offered", o.rate)
	}
	fmt.Fprintf(w, "\nCPU per message (µs of utime+stime from /proc/PID/stat), N=%d, C=%d, %s, medians of %d round(s)\n", o.n, o.c, load, o.rounds)
	fmt.Fprintf(w, "%-24s %-7s %12s %13s %12s %11s %9s %11s %12s %6s %6s %5s\n", "build", "phase", "ingress/acc", "fwd/delivery", "fwd/attempt", "broker/acc", "bench/acc", "accepted/s", "delivered/s", "steal", "other", "idle")
	for _, bin := range splitList(o.bin) {
		for _, name := range splitPhases(o.phases) {
			var ps []phase
			for _, p := range all {
				if p.Name == name && p.Bin == bin {
					ps = append(ps, p)
				}
			}
			if len(ps) == 0 {
				continue
			}
			m := func(f func(phase) float64) float64 {
				v := make([]float64, len(ps))
				for i, p := range ps {
					v[i] = f(p)
				}
				return median(v)
			}
			fmt.Fprintf(w, "%-24s %-7s %12.1f %13.1f %12.1f %11.1f %9.1f %11.0f %12.0f %6.2f %6.2f %5.2f\n", bin, name,
				m(func(p phase) float64 { return p.IngressPerAccepted }),
				m(func(p phase) float64 { return p.ForwarderPerDelivery }),
				m(func(p phase) float64 { return p.ForwarderPerAttempt }),
				m(func(p phase) float64 { return p.BrokerPerAccepted }),
				m(func(p phase) float64 { return p.BenchCPU * 1e6 / float64(max(p.Accepted, 1)) }),
				m(func(p phase) float64 { return p.AcceptedPerSecond }),
				m(func(p phase) float64 { return p.DeliveredPerSecond }),
				m(func(p phase) float64 { return p.Steal }),
				m(func(p phase) float64 { return p.Other }),
				m(func(p phase) float64 { return p.Idle }))
		}
	}
	fmt.Fprintln(w, "steal, other and idle: cores, mean over the window (other = CPU of processes besides the services, the broker and cpucost; idle = used by nobody: a closed loop with idle cores is bound by latency, not CPU); bench/acc = cpucost's own (load and backend)")
	reportPaired(w, o, all)
}

// reportPaired compares each build with the first, round by round: the
// builds of a round run back to back, so their ratio cancels most of the
// machine's drift between rounds, which moves every figure of a round
// together (±20 % here from one hour to the next). It prints the median of
// the rounds' ratios, and each round's.
func reportPaired(w io.Writer, o options, all []phase) {
	bins := splitList(o.bin)
	if len(bins) < 2 {
		return
	}
	fmt.Fprintf(w, "\nPaired: each build over %s in the same round (median of the rounds' ratios; each round's in brackets)\n", bins[0])
	fmt.Fprintf(w, "%-24s %-7s %-34s %-34s %-34s %-34s %s\n", "build", "phase", "accepted/s", "delivered/s", "delivered/s while sending", "accepted+delivered/s while sending", "CPU per accepted, all processes")
	find := func(bin, name string, r int) (phase, bool) {
		for _, p := range all {
			if p.Bin == bin && p.Name == name && p.Round == r {
				return p, true
			}
		}
		return phase{}, false
	}
	total := func(p phase) float64 {
		return (p.IngressCPU + p.ForwarderCPU + p.BrokerCPU) / float64(max(p.Accepted, 1))
	}
	for _, bin := range bins[1:] {
		for _, name := range splitPhases(o.phases) {
			var acc, del, delSend, both, cpu []float64
			for r := 1; r <= o.rounds; r++ {
				a, ok1 := find(bins[0], name, r)
				b, ok2 := find(bin, name, r)
				if !ok1 || !ok2 || a.AcceptedPerSecond == 0 || a.DeliveredPerSecond == 0 {
					continue
				}
				acc = append(acc, b.AcceptedPerSecond/a.AcceptedPerSecond)
				del = append(del, b.DeliveredPerSecond/a.DeliveredPerSecond)
				if a.DeliveredSendingPerSec > 0 {
					delSend = append(delSend, b.DeliveredSendingPerSec/a.DeliveredSendingPerSec)
				}
				both = append(both, (b.AcceptedPerSecond+b.DeliveredSendingPerSec)/(a.AcceptedPerSecond+a.DeliveredSendingPerSec))
				cpu = append(cpu, total(b)/total(a))
			}
			if len(acc) == 0 {
				continue
			}
			fmt.Fprintf(w, "%-24s %-7s %-34s %-34s %-34s %-34s %s\n", bin, name, ratios(acc), ratios(del), ratios(delSend), ratios(both), ratios(cpu))
		}
	}
}

// ratios formats the median of v and v itself: "0.97 [1.02 0.91 0.97]".
func ratios(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%.2f [", median(v))
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.2f", x)
	}
	b.WriteByte(']')
	return b.String()
}

// sent is what one closed-loop send did.
type sent struct {
	accepted, refused int
	seconds           float64
}

// drive sends n registrations from o.c closed-loop clients and returns once
// every one was answered.
func drive(ctx context.Context, o options, target string, payload *load.Payload, ids string, n int) (sent, error) {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: o.c, MaxConnsPerHost: o.c,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var next, accepted, refused atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	t := time.Now()
	// At a fixed rate, send i is due at t + i/rate; a client that is late
	// sends at once (the clients are many, so lateness means saturation).
	due := func(i int64) time.Time { return t.Add(time.Duration(i) * time.Second / time.Duration(o.rate)) }
	for range o.c {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if o.rate > 0 {
					if wait := time.Until(due(i)); wait > 0 {
						time.Sleep(wait)
					}
				}
				id := ids + "-" + strconv.FormatInt(i, 10)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload.Body(id)))
				req.Header["Content-Type"] = []string{"application/json"}
				if o.key {
					req.Header["Idempotency-Key"] = []string{id}
				}
				resp, err := client.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					refused.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				} else {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	s := sent{accepted: int(accepted.Load()), refused: int(refused.Load()), seconds: time.Since(t).Seconds()}
	if err, _ := firstErr.Load().(error); err != nil && s.accepted == 0 {
		return s, err
	}
	return s, ctx.Err()
}

func fetchProfile(ctx context.Context, addr string, seconds int, file string) error {
	return fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), file)
}

func fetch(ctx context.Context, url, file string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sink is the backend: it answers 200, or 500 to a share of all attempts,
// and counts attempts and distinct delivered ids.
type sink struct {
	srv *http.Server
	url string

	mu        sync.Mutex
	failRate  float64
	requests  int
	failed    int
	delivered map[string]struct{}
}

// counts is what the sink saw since its last reset.
type counts struct{ requests, failed, delivered int }

func newSink() *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	s := &sink{url: "http://" + ln.Addr().String() + "/catering", delivered: map[string]struct{}{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s
}

func (s *sink) close() { _ = s.srv.Close() }

func (s *sink) reset(failRate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRate, s.requests, s.failed = failRate, 0, 0
	s.delivered = map[string]struct{}{}
}

func (s *sink) counts() counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return counts{requests: s.requests, failed: s.failed, delivered: len(s.delivered)}
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.requests++
	fail := s.failRate > 0 && mrand.Float64() < s.failRate
	if fail {
		s.failed++
	} else {
		s.delivered[key] = struct{}{}
	}
	s.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// waitEnd waits until want ids were delivered, or no attempt arrived for
// idle, and returns the CPU snapshot taken when the last attempt arrived.
func (s *sink) waitEnd(ctx context.Context, want int, idle, timeout time.Duration, pids map[string]int) (snapshot, counts, error) {
	deadline := time.Now().Add(timeout)
	last := s.counts()
	lastSnap := sample(pids)
	lastChange := time.Now()
	for {
		select {
		case <-ctx.Done():
			return lastSnap, last, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		c := s.counts()
		if c != last {
			last, lastSnap, lastChange = c, sample(pids), time.Now()
		}
		if c.delivered >= want || time.Since(lastChange) > idle {
			return lastSnap, last, nil
		}
		if time.Now().After(deadline) {
			return lastSnap, last, errors.New("timed out waiting for deliveries")
		}
	}
}

func (s *sink) waitIdle(ctx context.Context, want int, idle, timeout time.Duration) error {
	_, c, err := s.waitEnd(ctx, want, idle, timeout, nil)
	if err == nil && c.delivered < want*9/10 {
		err = fmt.Errorf("only %d of %d delivered", c.delivered, want)
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// median returns the median of v (not empty), leaving v as it was.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
