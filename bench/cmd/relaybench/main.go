// Command relaybench measures relay on this machine in one invocation: the
// broker's own limit, the ingress at saturation and at fixed rates, end to
// end, backlog drain, slow and flaky backends, and memory. It prints a table,
// writes <out>/<timestamp>.json and PNG charts, and exits non-zero when a
// phase failed (with -strict, also when a target was missed).
//
// Run it from bench/: go run ./cmd/relaybench -out results
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/railco/relay/bench/internal/report"
	"github.com/railco/relay/bench/internal/runner"
	"github.com/railco/relay/bench/internal/sink"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == sink.ChildArg {
		os.Exit(sink.Main(os.Stdin, os.Stdout))
	}
	// The load generator allocates a result per request and runs thousands
	// of goroutines; collecting less often leaves more of the shared CPUs to
	// the system under test. Its own memory is not a figure.
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run returns the exit code: 0 all phases passed, 1 a phase failed or a
// target was missed under -strict, 2 the run could not start.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relaybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg runner.Config
	cfg.Register(fs)
	cpuProfile := fs.String("cpuprofile", "", "write the benchmark process's own CPU profile (the load generator) to this file")
	render := fs.String("render", "", "measure nothing: print the table of a results file as Markdown")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *render != "" {
		return renderMarkdown(*render, stdout, stderr)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "relaybench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "relaybench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	res, err := runner.Run(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "relaybench:", err)
		return 2
	}

	stamp := res.Started.Format("20060102T150405Z")
	title := fmt.Sprintf("relay benchmark %s — %d CPUs, %s, %s, %s (%.0f s)",
		stamp, res.Machine.CPUs, res.Machine.Broker, res.Machine.GoVersion, res.Machine.Commit, res.Seconds)
	report.Table(stdout, title, res.Figures)

	code := 0
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		fmt.Fprintln(stderr, "relaybench:", err)
		code = 1
	}
	jsonPath := filepath.Join(cfg.Out, stamp+".json")
	if err := report.WriteJSON(jsonPath, res); err != nil {
		fmt.Fprintln(stderr, "relaybench: write results:", err)
		code = 1
	}
	if err := writeMarkdown(filepath.Join(cfg.Out, stamp+".md"), res.Figures); err != nil {
		fmt.Fprintln(stderr, "relaybench: write table:", err)
		code = 1
	}
	charts, err := runner.Charts(res, cfg.Out, stamp)
	if err != nil {
		fmt.Fprintln(stderr, "relaybench:", err)
		code = 1
	}
	fmt.Fprintln(stdout, "results:", jsonPath)
	for _, c := range charts {
		fmt.Fprintln(stdout, "chart:  ", c)
	}

	n := res.Noise
	fmt.Fprintf(stdout, "\nmachine noise over %d measured windows: other processes mean %.2f / max %.2f cores, steal mean %.2f / max %.2f cores\n",
		n.Windows, n.MeanOther, n.MaxOther, n.MeanSteal, n.MaxSteal)
	if n.Noisy {
		fmt.Fprintln(stdout, "WARNING: the machine was busy with other work or steal during this run; throughput figures are lower bounds.")
	}

	var missed []string
	for _, f := range res.Figures {
		if f.Met != nil && !*f.Met {
			missed = append(missed, fmt.Sprintf("%s: %s = %s (target %s)", f.Phase, f.Name, report.Value(f), f.Target))
		}
	}
	if len(missed) > 0 {
		fmt.Fprintf(stdout, "\n%d target(s) missed:\n", len(missed))
		for _, m := range missed {
			fmt.Fprintln(stdout, "  -", m)
		}
		if cfg.Strict {
			code = 1
		}
	}
	if len(res.Failures) > 0 {
		fmt.Fprintf(stdout, "\n%d phase failure(s):\n", len(res.Failures))
		for _, f := range res.Failures {
			fmt.Fprintln(stdout, "  -", f)
		}
		code = 1
	}
	if code == 0 {
		fmt.Fprintf(stdout, "\nall phases passed in %s\n", time.Duration(res.Seconds*float64(time.Second)).Round(time.Second))
	}
	return code
}

// renderMarkdown prints the figures of a results file as a Markdown table.
func renderMarkdown(path string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "relaybench:", err)
		return 2
	}
	var res struct {
		Figures []report.Figure `json:"figures"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintln(stderr, "relaybench:", path, err)
		return 2
	}
	report.Markdown(stdout, res.Figures)
	return 0
}

func writeMarkdown(path string, figures []report.Figure) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	report.Markdown(f, figures)
	return f.Close()
}
