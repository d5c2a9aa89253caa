// Command relayctl is the operator's tool for a running relay: queue
// statistics and the dead-letter queue (list, show, redrive, purge). It talks
// AMQP to the broker, like the services, and reads the same environment
// (AMQP_URL, TOPOLOGY_PREFIX and the retry settings) to find the queues.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokeradmin"
	"github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/topology"
)

// version is set at build time: make build passes -ldflags "-X main.version=...".
var version = "dev"

// Exit codes. 2 is also what flag-style tools use for usage errors, so a
// script can tell "you called me wrong" from "the operation failed".
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Defaults, the same as the services' (AMQP_URL) and the management plugin's.
const (
	defaultAMQPURL       = "amqp://guest:guest@localhost:5672/"
	defaultManagementURL = "" // derived from AMQP_URL, as the forwarder does
)

// dialTimeout bounds connecting to the broker: an operator waiting at a
// prompt wants to hear that it is unreachable within seconds.
const dialTimeout = 5 * time.Second

// command is one line of the usage text.
type command struct {
	name string // as typed: "dead list"
	args string
	help string
	run  func(a *app, args []string) int
}

// commands is set in init: the commands' usage text lists commands.
var commands []command

func init() {
	commands = []command{
		{name: "stats", help: "depth and consumers of the main, retry and dead-letter queues; rates when the management API answers", run: (*app).stats},
		{name: "dead list", args: "[--limit N] [--reason R]", help: "list dead letters: id, reason, attempts, last status, last error, age", run: (*app).deadList},
		{name: "dead show", args: "<id>", help: "print a dead letter with its headers and body", run: (*app).deadShow},
		{name: "dead redrive", args: "(<id>... | --all [--reason R] --yes) [--rate N/s]", help: "send dead letters back to the main queue, attempts reset; named ids at once, --all only with --yes", run: (*app).deadRedrive},
		{name: "dead purge", args: "(<id>... | --all) [--reason R] --yes", help: "delete dead letters for good", run: (*app).deadPurge},
		{name: "version", help: "print relayctl's version", run: (*app).version},
		{name: "help", help: "print this help"},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is one invocation: its environment, output and the command's name.
type app struct {
	ctx    context.Context
	getenv config.Getenv
	stdout io.Writer
	stderr io.Writer
	json   bool   // --json: machine output on stdout
	name   string // "dead list", for messages
}

// run runs the command args names and returns the exit code.
func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr}
	// Global flags come before the command; --json may also follow it.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "--json", "-json":
			a.json = true
		case "-h", "-help", "--help":
			a.usage(stdout)
			return exitOK
		default:
			fmt.Fprintf(stderr, "relayctl: unknown flag %q\n\n", args[0])
			a.usage(stderr)
			return exitUsage
		}
		args = args[1:]
	}
	if len(args) == 0 {
		a.usage(stderr)
		return exitUsage
	}
	if args[0] == "help" {
		a.usage(stdout)
		return exitOK
	}
	cmd, rest, ok := lookup(args)
	if !ok {
		fmt.Fprintf(stderr, "relayctl: unknown command %q\n\n", strings.Join(args[:min(len(args), 2)], " "))
		a.usage(stderr)
		return exitUsage
	}
	a.name = cmd.name
	return cmd.run(a, rest)
}

// lookup finds the command args name, one or two words long, and returns the
// remaining arguments.
func lookup(args []string) (command, []string, bool) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if c.run != nil && len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

func (a *app) usage(w io.Writer) {
	l := config.NewLoader(a.getenv)
	amqpURL := l.String("AMQP_URL", defaultAMQPURL)
	mgmt := l.String("RABBITMQ_MANAGEMENT_URL", defaultManagementURL)
	prefix := l.String("TOPOLOGY_PREFIX", "catering")
	fmt.Fprintln(w, "Usage: relayctl [--json] <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		line := strings.TrimSpace(c.name + " " + c.args)
		if len(line) > 36 {
			fmt.Fprintf(w, "  %s\n  %-36s %s\n", line, "", c.help)
			continue
		}
		fmt.Fprintf(w, "  %-36s %s\n", line, c.help)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags:")
	fmt.Fprintln(w, "  --json        print JSON on stdout instead of tables (any command)")
	fmt.Fprintln(w, "  --limit N     dead list: show at most N letters (default 100; 0: all)")
	fmt.Fprintln(w, "  --reason R    only letters dead for reason R: "+strings.Join(reasons, ", "))
	fmt.Fprintln(w, "  --all         redrive or purge every letter (narrowed by --reason)")
	fmt.Fprintln(w, "  --rate N/s    redrive at most N letters a second (also N/m, N/h; default: unlimited)")
	fmt.Fprintln(w, "  --yes         purge, redrive --all: really do it; without it they say how many letters they would touch")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment:")
	fmt.Fprintf(w, "  AMQP_URL                 the broker (now %s)\n", broker.Redact(amqpURL))
	where := redactHTTP(mgmt)
	if api, err := brokeradmin.New(amqpURL, mgmt); mgmt == "" && err == nil {
		where = api.String() + ", from AMQP_URL"
	}
	fmt.Fprintf(w, "  RABBITMQ_MANAGEMENT_URL  management API for stats' rates (now %s); user and password from AMQP_URL\n", where)
	fmt.Fprintln(w, "  AMQP_CA_FILE, AMQP_CLIENT_CERT_FILE, AMQP_CLIENT_KEY_FILE")
	fmt.Fprintln(w, "                           TLS of an amqps:// AMQP_URL: a CA to trust, a client certificate")
	fmt.Fprintf(w, "  TOPOLOGY_PREFIX          names the queues (now %s)\n", prefix)
	fmt.Fprintln(w, "  MAX_DELIVERY_ATTEMPTS, RETRY_INITIAL_INTERVAL, RETRY_MULTIPLIER, RETRY_MAX_INTERVAL")
	fmt.Fprintln(w, "                           name the retry tiers: set them as for the services")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit status: 0 done, 1 failed (or ids not found), 2 usage error (or purge, redrive --all without --yes).")
}

// settings are what every broker command reads from the environment.
type settings struct {
	amqpURL       string
	brokerTLS     *tls.Config
	managementURL string
	topo          *topology.Topology
}

// load reads the settings; a bad variable is a usage error.
func (a *app) load() (settings, bool) {
	l := config.NewLoader(a.getenv)
	s := settings{
		amqpURL:       l.String("AMQP_URL", defaultAMQPURL),
		managementURL: l.String("RABBITMQ_MANAGEMENT_URL", defaultManagementURL),
	}
	cfg := topology.LoadConfig(l)
	tlsFiles := broker.LoadTLSFiles(l)
	err := l.Err()
	if err == nil {
		err = broker.CheckTLS(s.amqpURL, tlsFiles)
	}
	if err == nil {
		s.brokerTLS, err = tlsFiles.Config("")
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		if _, perr := amqp.ParseURI(s.amqpURL); perr != nil {
			// The parser's error quotes the URL, password and all.
			err = fmt.Errorf("AMQP_URL %s is not an amqp:// URL", broker.Redact(s.amqpURL))
		}
	}
	if err != nil {
		msg, _ := terminalSafe(err.Error(), multiLine)
		fmt.Fprintf(a.stderr, "relayctl: configuration: %s\n", msg)
		return settings{}, false
	}
	s.topo = topology.New(cfg)
	return s, true
}

// dial connects to the broker; the caller closes the connection.
func (a *app) dial(s settings) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(s.amqpURL, amqp.Config{
		Properties:      amqp.Table{"connection_name": "relayctl"},
		Dial:            amqp.DefaultDial(dialTimeout),
		TLSClientConfig: s.brokerTLS.Clone(), // the library sets its ServerName
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", broker.Redact(s.amqpURL), err)
	}
	return conn, nil
}

// connect loads the settings and dials: the start of every broker command.
// It reports its own failure and returns the exit code to end with.
func (a *app) connect() (settings, *amqp.Connection, int) {
	s, ok := a.load()
	if !ok {
		return s, nil, exitUsage
	}
	conn, err := a.dial(s)
	if err != nil {
		return s, nil, a.fail(err)
	}
	return s, conn, exitOK
}

// notFoundHint follows a missing queue: the usual cause is a setting that
// differs from the services', which declare the queues when they start.
const notFoundHint = "(are TOPOLOGY_PREFIX and the retry settings the same as the services'? They declare the queues when they start.)"

// fail reports err and returns the runtime-error exit code.
func (a *app) fail(err error) int {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
		err = fmt.Errorf("%w\n%s", err, notFoundHint)
	}
	// Error texts quote the broker, the management API and letters' ids.
	msg, _ := terminalSafe(err.Error(), multiLine)
	fmt.Fprintf(a.stderr, "relayctl %s: %s\n", a.name, msg)
	return exitFailure
}

// usageError reports a misuse of the command and returns the usage exit code.
func (a *app) usageError(format string, args ...any) int {
	fmt.Fprintf(a.stderr, "relayctl %s: %s\n", a.name, safe(fmt.Sprintf(format, args...)))
	fmt.Fprintf(a.stderr, "Run 'relayctl help' for usage.\n")
	return exitUsage
}

// flags returns the command's flag set, with --json already defined.
func (a *app) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("relayctl "+a.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parse, help by usage
	fs.BoolVar(&a.json, "json", a.json, "print JSON on stdout")
	return fs
}

// parse parses args with fs, flags and positional arguments in any order
// ("--" ends the flags), and returns the positional ones. On failure it
// reports and returns the exit code to end with.
func (a *app) parse(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.usage(a.stdout)
				return nil, exitOK, false
			}
			return nil, a.usageError("%v", err), false
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), exitOK, true
		}
		if len(rest) == 0 {
			return positional, exitOK, true
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func (a *app) version(args []string) int {
	pos, code, ok := a.parse(a.flags(), args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageError("takes no arguments")
	}
	if a.json {
		return a.printJSON(map[string]string{"version": version})
	}
	fmt.Fprintf(a.stdout, "relayctl %s\n", version)
	return exitOK
}
