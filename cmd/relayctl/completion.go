package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// The completion scripts are generated from the command table and the flags
// each command declares (commandFlags), so that they complete exactly what
// relayctl accepts. They complete commands, subcommands, flags, the values
// of --reason and the shells of completion; never letters' ids, which would
// take a round trip to the broker on every Tab.

func (a *app) defineCompletion(fs *flag.FlagSet) func([]string) int {
	return func(pos []string) int {
		if len(pos) != 1 {
			return a.usageError("which shell? completion bash or completion zsh")
		}
		switch pos[0] {
		case "bash":
			writeBashCompletion(a.stdout)
		case "zsh":
			writeZshCompletion(a.stdout)
		default:
			return a.usageError("shell %q: want bash or zsh", pos[0])
		}
		return exitOK
	}
}

// shells are what completion takes.
var shells = []string{"bash", "zsh"}

// completionTree is what both scripts complete, in the order of the
// command table.
type completionTree struct {
	top        []word                // first words: commands and groups
	groups     map[string][]word     // a group's second words
	flags      map[string][]flagInfo // a command's flags, by its full name
	positional map[string][]string   // values of a command's arguments, when there are few
}

type word struct{ name, help string }

func buildCompletionTree() completionTree {
	t := completionTree{groups: map[string][]word{}, flags: map[string][]flagInfo{}, positional: map[string][]string{}}
	seen := map[string]bool{}
	for i := range commands {
		c := &commands[i]
		first, sub, isSub := strings.Cut(c.name, " ")
		if !seen[first] {
			seen[first] = true
			help := c.summary
			if isSub {
				help = "the dead-letter queue: " + strings.Join(subcommands(first), ", ")
			}
			t.top = append(t.top, word{first, help})
		}
		if isSub {
			t.groups[first] = append(t.groups[first], word{sub, c.summary})
		}
		t.flags[c.name] = commandFlags(c)
	}
	t.positional["completion"] = shells
	return t
}

// bashWords quotes nothing: every word completed is a plain one.
func bashWords(ws []word) string {
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = w.name
	}
	return strings.Join(names, " ")
}

func writeBashCompletion(w io.Writer) {
	t := buildCompletionTree()
	var groupNames []string
	for _, g := range t.top {
		if _, ok := t.groups[g.name]; ok {
			groupNames = append(groupNames, g.name)
		}
	}
	fmt.Fprintf(w, `# bash completion for relayctl, made by "relayctl completion bash".
# In this shell:  source <(relayctl completion bash)
# Always:         relayctl completion bash > ~/.local/share/bash-completion/completions/relayctl

_relayctl() {
    local cur prev cmd w i
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev=""
    if (( COMP_CWORD > 0 )); then prev="${COMP_WORDS[COMP_CWORD-1]}"; fi
    # --flag=value: bash splits it at "=" (COMP_WORDBREAKS).
    if [[ "$cur" == "=" ]]; then
        cur=""
    elif [[ "$prev" == "=" ]] && (( COMP_CWORD > 1 )); then
        prev="${COMP_WORDS[COMP_CWORD-2]}"
    fi

    # The command: the words before the cursor that are not flags.
    cmd=""
    for (( i = 1; i < COMP_CWORD; i++ )); do
        w="${COMP_WORDS[i]}"
        case "$w" in -*|=) continue ;; esac
        case "$cmd" in
            "") cmd="$w" ;;
            %[1]s) cmd="$cmd $w" ;;
            help) cmd="help $w" ;;
            *) break ;;
        esac
    done

    case "$cmd" in
        ""|help)
            COMPREPLY=( $(compgen -W "%[2]s" -- "$cur") )
            if [[ "$cmd" == "" && "$cur" == -* ]]; then COMPREPLY=( $(compgen -W "--json --help" -- "$cur") ); fi
            ;;
`, strings.Join(append(groupNames, prefixAll("help ", groupNames)...), "|"), bashWords(t.top))
	for _, g := range groupNames {
		fmt.Fprintf(w, "        %s|\"help %s\")\n", g, g)
		fmt.Fprintf(w, "            COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") )\n", bashWords(t.groups[g]))
		fmt.Fprintf(w, "            if [[ \"$cmd\" == %s && \"$cur\" == -* ]]; then COMPREPLY=( $(compgen -W \"--help\" -- \"$cur\") ); fi\n", g)
		fmt.Fprintln(w, "            ;;")
	}
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		flags := t.flags[c.name]
		fmt.Fprintf(w, "        %q)\n", c.name)
		var withValue, names []string
		for _, f := range flags {
			names = append(names, "--"+f.name)
			switch {
			case len(f.values) > 0:
				fmt.Fprintf(w, "            if [[ \"$prev\" == --%s ]]; then COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return; fi\n",
					f.name, strings.Join(f.values, " "))
			case f.value != "" && !f.optional:
				withValue = append(withValue, "--"+f.name)
			}
		}
		names = append(names, "--help")
		if len(withValue) > 0 {
			fmt.Fprintf(w, "            case \"$prev\" in %s) return ;; esac\n", strings.Join(withValue, "|"))
		}
		if vals := t.positional[c.name]; len(vals) > 0 {
			fmt.Fprintf(w, "            if [[ \"$cur\" != -* ]]; then COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return; fi\n", strings.Join(vals, " "))
		}
		fmt.Fprintf(w, "            COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") )\n", strings.Join(names, " "))
		fmt.Fprintln(w, "            ;;")
	}
	fmt.Fprint(w, `    esac
}

complete -F _relayctl relayctl
`)
}

func prefixAll(prefix string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = `"` + prefix + s + `"`
	}
	return out
}

// zshQuote returns s inside single quotes for zsh.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshDescription makes help text fit inside the brackets of an _arguments
// spec or after the colon of a _describe item.
func zshDescription(s string) string {
	s = strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, "\n", " ").Replace(s)
	return s
}

func zshItems(ws []word) string {
	items := make([]string, len(ws))
	for i, w := range ws {
		items[i] = zshQuote(strings.ReplaceAll(w.name, ":", `\:`) + ":" + zshDescription(w.help))
	}
	return strings.Join(items, " ")
}

func writeZshCompletion(w io.Writer) {
	t := buildCompletionTree()
	var groupNames []string
	for _, g := range t.top {
		if _, ok := t.groups[g.name]; ok {
			groupNames = append(groupNames, g.name)
		}
	}
	fmt.Fprintf(w, `#compdef relayctl
# zsh completion for relayctl, made by "relayctl completion zsh".
# In this shell (after compinit):  source <(relayctl completion zsh)
# Always:  relayctl completion zsh > "${fpath[1]}/_relayctl", then start a new shell.

_relayctl() {
  local i w cmd="" last=1
  # The command: the words before the cursor that are not flags.
  for (( i = 2; i < CURRENT; i++ )); do
    w=${words[i]}
    [[ $w == -* ]] && continue
    case $cmd in
      "") cmd=$w ;;
      %[1]s) cmd="$cmd $w" ;;
      help) cmd="help $w" ;;
      *) break ;;
    esac
    last=$i
  done

  local -a items
  case $cmd in
    ""|help)
      if [[ $cmd == "" && $PREFIX == -* ]]; then
        compadd -- --json --help
      else
        items=(%[2]s)
        _describe -t commands 'relayctl command' items
      fi
      ;;
`, strings.Join(append(groupNames, prefixAll("help ", groupNames)...), "|"), zshItems(t.top))
	for _, g := range groupNames {
		fmt.Fprintf(w, "    %s|\"help %s\")\n", g, g)
		fmt.Fprintf(w, "      items=(%s)\n", zshItems(t.groups[g]))
		fmt.Fprintf(w, "      _describe -t commands %s items\n", zshQuote("relayctl "+g+" command"))
		fmt.Fprintln(w, "      ;;")
	}
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		fmt.Fprintf(w, "    %q)\n", c.name)
		// _arguments reads words from the command's last word on.
		fmt.Fprintln(w, `      words=("${(@)words[last,-1]}"); (( CURRENT -= last - 1 ))`)
		fmt.Fprint(w, "      _arguments")
		for _, f := range t.flags[c.name] {
			spec := "--" + f.name + "[" + zshDescription(f.usage) + "]"
			switch {
			case len(f.values) > 0:
				spec += ":" + f.value + ":(" + strings.Join(f.values, " ") + ")"
			case f.value != "" && !f.optional:
				spec += ":" + f.value + ": "
			}
			fmt.Fprintf(w, " \\\n        %s", zshQuote(spec))
		}
		fmt.Fprintf(w, " \\\n        %s", zshQuote("(- *)--help[print the command's help]"))
		switch {
		case len(t.positional[c.name]) > 0:
			fmt.Fprintf(w, " \\\n        %s", zshQuote("1:shell:("+strings.Join(t.positional[c.name], " ")+")"))
		case strings.Contains(c.args, "<id>"):
			fmt.Fprintf(w, " \\\n        %s", zshQuote("*:dead letter id: "))
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "      ;;")
	}
	fmt.Fprint(w, `  esac
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _relayctl "$@"
else
  compdef _relayctl relayctl
fi
`)
}
