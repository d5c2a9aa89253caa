// Package report renders a run: the table on the terminal, the results file,
// and the PNG charts.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
)

// Figure is one row of the table.
type Figure struct {
	Phase string  `json:"phase"`
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Text, when set, is how the table shows the value.
	Text string `json:"text,omitempty"`
	// Ratio is Value / the value Reference names, when there is one.
	Ratio     float64 `json:"ratio,omitempty"`
	Reference string  `json:"reference,omitempty"`
	Target    string  `json:"target,omitempty"`
	// Met is nil when the figure has no target.
	Met *bool `json:"met,omitempty"`
}

// Table writes figures as a table, phase by phase.
func Table(w io.Writer, title string, figures []Figure) {
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetTitle(title)
	t.SetStyle(table.StyleLight)
	t.AppendHeader(table.Row{"Phase", "Figure", "Value", "Ratio", "Target", "Met"})
	t.SetColumnConfigs([]table.ColumnConfig{
		{Number: 1, AutoMerge: true, WidthMax: 22},
		{Number: 2, WidthMax: 44},
		{Number: 3, Align: text.AlignRight, WidthMax: 38},
		{Number: 4, WidthMax: 32},
		{Number: 5, WidthMax: 24},
	})
	prev := ""
	for _, f := range figures {
		if prev != "" && phaseNumber(f.Phase) != phaseNumber(prev) {
			t.AppendSeparator()
		}
		prev = f.Phase
		t.AppendRow(table.Row{f.Phase, f.Name, Value(f), Ratio(f), f.Target, Met(f)})
	}
	t.Render()
}

// Value is a figure's value with its unit, as the table shows it.
func Value(f Figure) string {
	if f.Text != "" {
		return f.Text
	}
	switch {
	case f.Unit == "msgs":
		return fmt.Sprintf("%.0f", f.Value)
	case f.Unit == "MiB" || f.Unit == "ms":
		return fmt.Sprintf("%.2f %s", f.Value, f.Unit)
	default:
		return fmt.Sprintf("%.1f %s", f.Value, f.Unit)
	}
}

// Ratio is a figure's ratio as a percentage of its reference. It is cut, not
// rounded, to two decimals, so that it never reads better than it is.
func Ratio(f Figure) string {
	if f.Reference == "" {
		return ""
	}
	return fmt.Sprintf("%.2f%% of %s", math.Trunc(f.Ratio*10000)/100, f.Reference)
}

// Met is "yes", "NO", or "" when the figure has no target.
func Met(f Figure) string {
	switch {
	case f.Met == nil:
		return ""
	case *f.Met:
		return "yes"
	default:
		return "NO"
	}
}

func phaseNumber(phase string) string {
	n, _, _ := strings.Cut(phase, " ")
	return n
}

// WriteJSON writes v, indented, to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markdown writes figures as a Markdown table, for docs/BENCHMARKS.md.
func Markdown(w io.Writer, figures []Figure) {
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	fmt.Fprintln(w, "| Phase | Figure | Value | Ratio | Target | Met |")
	fmt.Fprintln(w, "|---|---|--:|---|---|---|")
	prev := ""
	for _, f := range figures {
		phase := f.Phase
		if phase == prev {
			phase = ""
		}
		prev = f.Phase
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", esc(phase), esc(strings.TrimSpace(f.Name)), esc(Value(f)), esc(Ratio(f)), esc(f.Target), Met(f))
	}
}
