// Command relayctl is the operator's tool for a running relay: queue
// statistics and the dead-letter queue (list, show, redrive, purge).
//
// This is a skeleton: the commands are dispatched and documented, but every
// command except help and version reports "not implemented yet" and exits 2.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/config"
)

// version is set at build time: make build passes -ldflags "-X main.version=...".
var version = "dev"

// Exit codes. 2 is also what flag-style tools use for usage errors, so a
// script can tell "you called me wrong" from "the operation failed".
const (
	exitOK    = 0
	exitUsage = 2
)

// defaultAMQPURL matches the services' and scripts/broker.sh's default.
const defaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// command is one line of the usage text; run nil means not implemented yet.
type command struct {
	name string // as typed: "dead list"
	args string
	help string
	run  func(args []string, stdout io.Writer) int
}

var commands = []command{
	{name: "stats", help: "depth and consumers of the main, retry and dead-letter queues"},
	{name: "dead list", help: "list dead letters: id, attempts, last error, age"},
	{name: "dead show", args: "<id>", help: "print one dead letter with its headers and body"},
	{name: "dead redrive", args: "<id>... | --all", help: "send dead letters back to the main queue"},
	{name: "dead purge", args: "<id>... | --all", help: "delete dead letters for good"},
	{name: "version", help: "print relayctl's version", run: func(_ []string, stdout io.Writer) int {
		fmt.Fprintf(stdout, "relayctl %s\n", version)
		return exitOK
	}},
	{name: "help", help: "print this help"},
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run dispatches args and returns the exit code.
func run(args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr, getenv)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout, getenv)
		return exitOK
	}
	cmd, rest, ok := lookup(args)
	if !ok {
		fmt.Fprintf(stderr, "relayctl: unknown command %q\n\n", strings.Join(args[:min(len(args), 2)], " "))
		usage(stderr, getenv)
		return exitUsage
	}
	if cmd.run == nil {
		fmt.Fprintf(stderr, "relayctl %s: not implemented yet\n", cmd.name)
		return exitUsage
	}
	return cmd.run(rest, stdout)
}

// lookup finds the command args name, one or two words long, and returns the
// remaining arguments.
func lookup(args []string) (command, []string, bool) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

func usage(w io.Writer, getenv config.Getenv) {
	amqpURL := config.NewLoader(getenv).String("AMQP_URL", defaultAMQPURL)
	fmt.Fprintln(w, "Usage: relayctl <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-34s %s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment:")
	fmt.Fprintf(w, "  AMQP_URL  the broker (now %s)\n", broker.Redact(amqpURL))
}
