package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// bash sources the script relayctl prints and registers it for relayctl.
func TestCompletion_BashSourcesTheScript(t *testing.T) {
	bin := buildRelayctl(t)
	out, err := exec.Command("bash", "-c", "source <("+bin+" completion bash) && complete -p relayctl").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "complete -F _relayctl relayctl" {
		t.Fatalf("bash: %v\n%s", err, out)
	}
}

// What bash offers at the cursor, asked of the completion function the way
// bash asks it (COMP_WORDS, COMP_CWORD); "=" is a word of its own, as
// COMP_WORDBREAKS splits --reason=max.
func TestCompletion_BashCompletes(t *testing.T) {
	var script strings.Builder
	writeBashCompletion(&script)
	tests := []struct {
		line string // words before the cursor, then the word being completed
		want string
	}{
		{"relayctl ", "stats dead trace completion version help"},
		{"relayctl de", "dead"},
		{"relayctl --json d", "dead"},
		{"relayctl -", "--json --help"},
		{"relayctl dead ", "list show redrive purge"},
		{"relayctl dead re", "redrive"},
		{"relayctl dead -", "--help"},
		{"relayctl dead list --", "--json --limit --reason --since --until --help"},
		{"relayctl dead list --reason ", strings.Join(reasons, " ")},
		{"relayctl dead list --reason = non", "non-retryable"},
		{"relayctl dead list --since ", ""},
		{"relayctl dead list --reason max-attempts --l", "--limit"},
		{"relayctl dead redrive --all --y", "--yes"},
		{"relayctl dead redrive --r", "--rate --reason"},
		{"relayctl dead purge --a", "--all"},
		{"relayctl stats --w", "--watch"},
		{"relayctl completion ", "bash zsh"},
		{"relayctl help ", "stats dead trace completion version help"},
		{"relayctl help dead p", "purge"},
		{"relayctl version --", "--json --help"},
	}
	for _, tt := range tests {
		words := strings.Split(tt.line, " ")
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := script.String() + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_relayctl\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: bash: %v\n%s", tt.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("%q completes to %q, want %q", tt.line, got, tt.want)
		}
	}
}

// The zsh script is checked by zsh itself where zsh is installed (syntax,
// and compdef registering it after compinit); everywhere, its shape is
// checked: the #compdef line, every command and flag, balanced case/esac.
func TestCompletion_ZshScriptIsWellFormed(t *testing.T) {
	var b strings.Builder
	writeZshCompletion(&b)
	script := b.String()
	if !strings.HasPrefix(script, "#compdef relayctl\n") {
		t.Errorf("zsh script does not start with #compdef relayctl")
	}
	if strings.Count(script, "\n    case ")+strings.Count(script, "\n  case ") != strings.Count(script, "esac") {
		t.Errorf("case and esac do not pair up:\n%s", script)
	}
	if strings.Count(strings.ReplaceAll(script, `'\''`, ""), "'")%2 != 0 {
		t.Errorf("unbalanced single quotes:\n%s", script)
	}

	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Log("zsh not installed: checked the script's shape only")
		return
	}
	bin := buildRelayctl(t)
	if out, err := exec.Command(zsh, "-n", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	out, err := exec.Command(zsh, "-f", "-c",
		"autoload -U compinit && compinit -u -d "+t.TempDir()+"/zcompdump && source <("+bin+" completion zsh) && print -r -- $_comps[relayctl]").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_relayctl" {
		t.Errorf("zsh: compdef did not register _relayctl: %v\n%s", err, out)
	}
}

// Both scripts name every command and every flag each command declares.
func TestCompletion_ScriptsCoverEveryCommandAndFlag(t *testing.T) {
	for shell, write := range map[string]func(w *strings.Builder){
		"bash": func(w *strings.Builder) { writeBashCompletion(w) },
		"zsh":  func(w *strings.Builder) { writeZshCompletion(w) },
	} {
		var b strings.Builder
		write(&b)
		script := b.String()
		for i := range commands {
			c := &commands[i]
			if c.name != "help" && !strings.Contains(script, `"`+c.name+`")`) {
				t.Errorf("%s script has no case for %q", shell, c.name)
			}
			for _, f := range commandFlags(c) {
				if !strings.Contains(script, "--"+f.name) {
					t.Errorf("%s script lacks %s --%s", shell, c.name, f.name)
				}
			}
		}
		for _, r := range reasons {
			if !strings.Contains(script, r) {
				t.Errorf("%s script does not complete --reason %s", shell, r)
			}
		}
	}
}
