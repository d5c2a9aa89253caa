package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// table prints aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

// row prints one line of cells, each made terminal-safe and kept on one line
// (a tab in a cell would shift every column after it).
func (t *table) row(cells ...string) {
	safeCells := make([]string, len(cells))
	for i, c := range cells {
		safeCells[i] = safe(c)
	}
	fmt.Fprintln(t.tw, strings.Join(safeCells, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }

// printJSON writes v as indented JSON to stdout, with no control character
// left raw (escapeC1), so that --json is safe on a terminal too.
func (a *app) printJSON(v any) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return a.fail(fmt.Errorf("encode JSON: %w", err))
	}
	if _, err := a.stdout.Write(escapeC1(buf.Bytes())); err != nil {
		return a.fail(fmt.Errorf("write JSON: %w", err))
	}
	return exitOK
}

// printJSONLine writes v as one line of JSON to stdout, control characters
// escaped like printJSON's: for streams of objects (stats --watch --json).
func (a *app) printJSONLine(v any) {
	js, err := json.Marshal(v)
	if err != nil {
		a.fail(fmt.Errorf("encode JSON: %w", err))
		return
	}
	_, _ = a.stdout.Write(append(escapeC1(js), '\n'))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// status is an HTTP status for a table; 0 means no response came.
func status(code int) string {
	if code == 0 {
		return "-"
	}
	return strconv.Itoa(code)
}

// oneLine squeezes s onto one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// age prints d the way people read ages: 45s, 12m, 3h20m, 5d4h.
func age(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// redactHTTP returns raw without a password, for messages.
func redactHTTP(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
