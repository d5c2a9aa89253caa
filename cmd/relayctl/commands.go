package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokeradmin"
	"github.com/railco/relay/pkg/config"
)

// command is one relayctl command.
type command struct {
	name    string // as typed: "dead list"
	args    string // synopsis after the name: "(<id>... | --all) [filters]"
	summary string // one line, for the list of commands
	about   string // what relayctl help <command> says before the flags
	// define declares the command's flags on fs and returns the function
	// that runs it with the positional arguments, once fs has parsed them.
	// Help and completion call define without running anything: the flags
	// are declared once, and every text that lists them follows.
	define func(a *app, fs *flag.FlagSet) func(pos []string) int
}

// groups are the first words of two-word commands, with what they are about.
var groups = map[string]string{
	"dead": "The dead-letter queue holds the registrations relay gave up on, each with headers\n" +
		"saying why (x-relay-reason, x-relay-attempts, x-relay-last-error, ...). These\n" +
		"commands look at them, send them back for delivery, or delete them.",
}

// commands is set in init: the help command lists commands.
var commands []command

func init() {
	commands = []command{
		{
			name: "stats", args: "[--watch [interval]]",
			summary: "depth and consumers of the main, retry and dead-letter queues; rates when the management API answers",
			about: `Shows every queue of relay's topology: ready messages and consumers, and,
when the RabbitMQ management API answers (RABBITMQ_MANAGEMENT_URL), unacked
messages and publish and deliver rates. A queue that does not exist is shown
as missing and makes the exit status 1.

With --watch the table is refreshed every interval (default 2s, at least
100ms; "--watch 5s" or "--watch=5s") until Ctrl-C, which ends it with exit
status 0. On a terminal each refresh clears the screen; otherwise the tables
follow one another, separated by a blank line; with --json each refresh is
one JSON object on a line of its own. While watching, a lost broker is
reported in the refresh and dialled again at the next one.`,
			define: (*app).defineStats,
		},
		{
			name: "dead list", args: "[--reason R] [--since T] [--until T] [--limit N]",
			summary: "list dead letters: id, reason, attempts, last status, last error, age",
			about: `Lists dead letters, oldest first: id, reason, attempts, redrives, last
status, last error and age. Listing takes the letters and puts them back in
order: it never removes one.

` + timesHelp,
			define: (*app).defineDeadList,
		},
		{
			name: "dead show", args: "<id>...",
			summary: "print dead letters with their headers and body",
			about: `Prints each named dead letter: what relay's headers say, every header, and
the body (indented when it is JSON). Control characters are removed for the
terminal, and a last line says so; --json shows the exact bytes. An id that
is not in the queue makes the exit status 1.`,
			define: (*app).defineDeadShow,
		},
		{
			name: "dead redrive", args: "(<id>... | --all) [--reason R] [--since T] [--until T] [--limit N] [--rate N/s] [--yes]",
			summary: "send dead letters back to the main queue, attempts reset; named ids at once, --all only with --yes",
			about: `Sends dead letters back to the main queue for a fresh round of attempts: the
attempt count starts over, and x-relay-redrive-count and x-relay-previous-*
headers keep their history. Each copy is published with a confirm before the
letter is removed, so a failure can duplicate a letter, never lose one.

Named ids are redriven at once (the filters narrow them). --all, with or
without filters, only says how many letters it would redrive, and exits with
status 2, unless --yes is given: a redrive of every letter can put thousands
of messages in front of a backend that has just recovered.

On a terminal a redrive that takes more than a moment shows its progress on
stderr (letters gone through, rate, time left); not with --json, nor when
stderr is not a terminal.

` + timesHelp,
			define: (*app).defineDeadRedrive,
		},
		{
			name: "dead purge", args: "(<id>... | --all) [--reason R] [--since T] [--until T] [--limit N] --yes",
			summary: "delete dead letters for good",
			about: `Deletes dead letters for good. Without --yes it only says how many letters it
would delete, and exits with status 2. Like redrive, it shows its progress
on a terminal.

` + timesHelp,
			define: (*app).defineDeadPurge,
		},
		{
			name: "trace", args: "<id> [--ingress URL]",
			summary: "where is my registration? its status and every step of its life, as a timeline",
			about: `Prints what relay knows of one registration: its status (accepted,
retrying, held, delivered, dead, purged), when it was accepted and
delivered (or why it died), and a timeline of its events: every attempt with
its HTTP status or error and its duration, retries and their tier, holds
while the backend was down, dead-lettering, redrives, purges. An attempt
made again after a forwarder died before settling it is marked duplicate.

It asks an ingress (GET /catering/registrations/<id>), whose index of the
event stream answers at once, where reading the stream itself would mean
reading up to EVENTS_MAX_AGE of every registration's events. The ingress is
RELAY_INGRESS_URL (default http://127.0.0.1:8290) or --ingress; with API
keys, RELAY_API_KEY is sent as the bearer key. An id the ingress does not
know (never accepted, or older than the event retention) makes the exit
status 1.`,
			define: (*app).defineTrace,
		},
		{
			name: "completion", args: "bash|zsh",
			summary: "print a shell completion script for commands, subcommands and flags",
			about: `Prints a script that completes relayctl's commands, subcommands, flags and
the values of --reason.

  bash, this shell:  source <(relayctl completion bash)
  bash, always:      relayctl completion bash > ~/.local/share/bash-completion/completions/relayctl
  zsh, this shell:   source <(relayctl completion zsh)    (after compinit)
  zsh, always:       relayctl completion zsh > "${fpath[1]}/_relayctl"`,
			define: (*app).defineCompletion,
		},
		{
			name: "version", summary: "print relayctl's version",
			about:  "Prints relayctl's version, as make build set it.",
			define: (*app).defineVersion,
		},
		{
			name: "help", args: "[command]",
			summary: "print this help, or a command's",
			about:   "Prints relayctl's usage, or the usage and flags of a command (help dead redrive).",
			define:  (*app).defineHelp,
		},
	}
}

// timesHelp explains --since and --until, the same for every command.
const timesHelp = `Times (T) are RFC 3339 (2026-12-04T10:00:00Z) or a duration meaning that long
ago (90m, 2h, 7d, 1d12h). They compare with the time a letter was
dead-lettered (x-relay-dead-lettered-at, else the broker's x-death time):
--since selects letters dead at or after T, --until letters dead before T; a
letter without a time matches neither. With --since or --until every letter
of the queue is read to filter on its time.`

// subcommands returns the second words of group's commands.
func subcommands(group string) []string {
	var out []string
	for _, c := range commands {
		if sub, ok := strings.CutPrefix(c.name, group+" "); ok {
			out = append(out, sub)
		}
	}
	return out
}

// synopsisWidth is where the list of commands puts the summaries.
const synopsisWidth = 36

func printCommandList(w io.Writer, prefix string) {
	for _, c := range commands {
		if !strings.HasPrefix(c.name, prefix) {
			continue
		}
		line := strings.TrimSpace(c.name + " " + c.args)
		if len(line) > synopsisWidth {
			fmt.Fprintf(w, "  %s\n  %-*s %s\n", line, synopsisWidth, "", c.summary)
			continue
		}
		fmt.Fprintf(w, "  %-*s %s\n", synopsisWidth, line, c.summary)
	}
}

// usage prints relayctl's usage: the commands, the global flags, the
// environment (with the values in effect, passwords hidden) and the exit
// statuses.
func (a *app) usage(w io.Writer) {
	l := config.NewLoader(a.getenv)
	amqpURL := l.String("AMQP_URL", defaultAMQPURL)
	mgmt := l.String("RABBITMQ_MANAGEMENT_URL", defaultManagementURL)
	prefix := l.String("TOPOLOGY_PREFIX", "catering")
	fmt.Fprintln(w, "Usage: relayctl [--json] <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	printCommandList(w, "")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "'relayctl help <command>' or 'relayctl <command> --help' prints a command's flags.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags:")
	fmt.Fprintln(w, "  --json        print JSON on stdout instead of tables, and errors as JSON lines on stderr (any command)")
	fmt.Fprintln(w, "  --limit N     act on at most N letters (dead list: default 100; 0: all)")
	fmt.Fprintln(w, "  --reason R    only letters dead for reason R: "+strings.Join(reasons, ", "))
	fmt.Fprintln(w, "  --since T     only letters dead at or after T: RFC 3339, or a duration ago (2h, 7d)")
	fmt.Fprintln(w, "  --until T     only letters dead before T")
	fmt.Fprintln(w, "  --all         redrive or purge every letter (narrowed by the filters)")
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
	fmt.Fprintln(w, exitStatusHelp)
}

const exitStatusHelp = "Exit status: 0 done, 1 failed (or ids not found), 2 usage error (or purge, redrive --all without --yes)."

// groupHelp prints the usage of the commands whose first word is group.
func (a *app) groupHelp(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: relayctl %s <command> [arguments]\n\n", group)
	fmt.Fprintln(w, groups[group])
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	printCommandList(w, group+" ")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "'relayctl help %s <command>' or 'relayctl %s <command> --help' prints a command's flags.\n", group, group)
}

// commandHelp prints c's usage, what it does, and its flags.
func (a *app) commandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: relayctl %s\n\n", strings.TrimSpace(c.name+" "+c.args))
	fmt.Fprintln(w, c.about)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags:")
	flags := commandFlags(c)
	width := len("-h, --help")
	for _, f := range flags {
		width = max(width, len(f.synopsis()))
	}
	for _, f := range flags {
		fmt.Fprintf(w, "  %-*s  %s\n", width, f.synopsis(), f.usage)
	}
	fmt.Fprintf(w, "  %-*s  %s\n", width, "-h, --help", "print this help")
	fmt.Fprintln(w)
	fmt.Fprintln(w, exitStatusHelp)
}

// flagInfo is what help and completion need to know of a flag.
type flagInfo struct {
	name     string   // without dashes
	value    string   // the value's name ("N"), "" for a switch
	optional bool     // the value may be left out (--watch)
	values   []string // the values it takes, when they are few (--reason)
	usage    string
}

func (f flagInfo) synopsis() string {
	switch {
	case f.value == "":
		return "--" + f.name
	case f.optional:
		return "--" + f.name + " [" + f.value + "]"
	default:
		return "--" + f.name + " " + f.value
	}
}

// Flag values may say more about themselves than package flag asks.
type (
	// optionalValue is a value that may be left out: --watch or --watch 5s.
	optionalValue interface{ optionalValue() string }
	// enumValue takes one of a few values.
	enumValue interface{ values() []string }
)

// commandFlags returns c's flags, --json included, sorted by name. It
// declares them on a flag set of its own and runs nothing.
func commandFlags(c *command) []flagInfo {
	a := &app{name: c.name, cmd: c, getenv: func(string) string { return "" }}
	fs := a.flags()
	c.define(a, fs)
	var out []flagInfo
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		info := flagInfo{name: f.Name, value: value, usage: usage}
		if o, ok := f.Value.(optionalValue); ok {
			info.value, info.optional = o.optionalValue(), true
		}
		if e, ok := f.Value.(enumValue); ok {
			info.values = e.values()
		}
		out = append(out, info)
	})
	return out
}

func (a *app) defineVersion(fs *flag.FlagSet) func([]string) int {
	return func(pos []string) int {
		if len(pos) > 0 {
			return a.usageError("takes no arguments")
		}
		if a.json {
			return a.printJSON(map[string]string{"version": version})
		}
		fmt.Fprintf(a.stdout, "relayctl %s\n", version)
		return exitOK
	}
}

func (a *app) defineHelp(fs *flag.FlagSet) func([]string) int {
	return func(pos []string) int {
		if len(pos) == 0 {
			a.usage(a.stdout)
			return exitOK
		}
		if c, rest, ok := lookup(pos); ok && len(rest) == 0 {
			a.commandHelp(a.stdout, c)
			return exitOK
		}
		if _, ok := groups[pos[0]]; ok && len(pos) == 1 {
			a.groupHelp(a.stdout, pos[0])
			return exitOK
		}
		var names []string
		for _, c := range commands {
			names = append(names, c.name)
		}
		slices.Sort(names)
		return a.usageError("no command %q; commands: %s", strings.Join(pos, " "), strings.Join(names, ", "))
	}
}
