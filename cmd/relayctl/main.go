// Command relayctl is the operator's tool for a running relay: queue
// statistics and the dead-letter queue (list, show, redrive, purge). It talks
// AMQP to the broker, like the services, and reads the same environment
// (AMQP_URL, TOPOLOGY_PREFIX and the retry settings) to find the queues.
//
// Every command declares its flags in one place (its define function in
// commands.go); the help texts and the shell completion scripts are built
// from those declarations, so none of them can drift from what the command
// accepts.
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
	json   bool     // --json: machine output on stdout, errors as JSON on stderr
	name   string   // "dead list", for messages
	cmd    *command // the command running, for its help
}

// run runs the command args names and returns the exit code.
func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	// --json anywhere on the line makes errors JSON, even one found before
	// the flag itself is parsed (an unknown flag in front of it).
	a := &app{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr, json: jsonRequested(args)}
	// Global flags come before the command; --json may also follow it.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "--json", "-json", "--json=true", "-json=true":
			a.json = true
		case "-h", "-help", "--help":
			a.usage(stdout)
			return exitOK
		default:
			return a.misuse(fmt.Sprintf("unknown flag %q", args[0]), "")
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return a.misuse("no command given", "")
	}
	cmd, rest, ok := lookup(args)
	if !ok {
		if _, isGroup := groups[args[0]]; isGroup {
			if len(args) > 1 && isHelpFlag(args[1]) {
				a.groupHelp(stdout, args[0])
				return exitOK
			}
			name := args[0]
			if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
				name += " " + args[1]
			}
			return a.misuse(fmt.Sprintf("unknown command %q (%s needs one of: %s)",
				name, args[0], strings.Join(subcommands(args[0]), ", ")), args[0])
		}
		return a.misuse(fmt.Sprintf("unknown command %q", strings.Join(args[:min(len(args), 2)], " ")), "")
	}
	a.name, a.cmd = cmd.name, cmd
	fs := a.flags()
	exec := cmd.define(a, fs)
	pos, code, ok := a.parse(fs, rest)
	if !ok {
		return code
	}
	return exec(pos)
}

// jsonRequested reports whether args ask for --json before any "--".
func jsonRequested(args []string) bool {
	on := false
	for _, arg := range args {
		switch arg {
		case "--":
			return on
		case "--json", "-json", "--json=true", "-json=true":
			on = true
		case "--json=false", "-json=false":
			on = false
		}
	}
	return on
}

func isHelpFlag(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// lookup finds the command args name, one or two words long, and returns the
// remaining arguments.
func lookup(args []string) (*command, []string, bool) {
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return nil, nil, false
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
		if _, perr := broker.ParseURLs(s.amqpURL); perr != nil {
			err = fmt.Errorf("AMQP_URL: %w", perr) // names the URL without its password
		}
	}
	if err != nil {
		a.complain(exitUsage, a.name, "configuration: "+err.Error(), "")
		return settings{}, false
	}
	s.topo = topology.New(cfg)
	return s, true
}

// dial connects to the broker; the caller closes the connection.
func (a *app) dial(s settings) (*amqp.Connection, error) {
	conn, _, err := broker.DialAny(s.amqpURL, amqp.Config{
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

// withHint adds notFoundHint to an error from the broker that names a
// missing queue.
func withHint(err error) error {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
		return fmt.Errorf("%w\n%s", err, notFoundHint)
	}
	return err
}

// flags returns the command's flag set, with --json already defined.
func (a *app) flags() *flag.FlagSet {
	name := "relayctl"
	if a.name != "" {
		name += " " + a.name
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parse, help by commandHelp
	fs.BoolVar(&a.json, "json", a.json, "print JSON on stdout, and errors as JSON on stderr")
	return fs
}

// parse parses args with fs, flags and positional arguments in any order
// ("--" ends the flags), and returns the positional ones. On failure, or
// when help was asked for, it reports and returns the exit code to end with.
func (a *app) parse(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.commandHelp(a.stdout, a.cmd)
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
