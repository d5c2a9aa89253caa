package main

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerminalSafe(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		mode        textMode
		want        string
		wantChanged bool
	}{
		{"plain ASCII untouched", "backend answered 500: db down", singleLine, "backend answered 500: db down", false},
		{"UTF-8 text untouched", "Königs Cross → Édimbourg, 寿司", singleLine, "Königs Cross → Édimbourg, 寿司", false},
		{"SGR colour removed", "\x1b[31mERROR\x1b[0m db down", singleLine, "ERROR db down", true},
		{"clear screen and cursor home", "\x1b[2J\x1b[Hfake prompt", singleLine, "fake prompt", true},
		{"CSI with private parameters", "a\x1b[?1049hb", singleLine, "ab", true},
		{"OSC window title ended by BEL", "x\x1b]0;pwned\x07y", singleLine, "xy", true},
		{"OSC 8 hyperlink ended by ST", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", singleLine, "click", true},
		{"OSC 52 clipboard write", "\x1b]52;c;cm0gLXJmIH4K\x07ok", singleLine, "ok", true},
		{"DCS string", "a\x1bPq#0;2;0;0;0\x1b\\b", singleLine, "ab", true},
		{"APC string", "a\x1b_Gf=100;AAAA\x1b\\b", singleLine, "ab", true},
		{"unterminated OSC: introducer removed, text kept", "a\x1b]0;title", singleLine, "a0;title", true},
		{"charset designation", "a\x1b(0lqk\x1b(Bb", singleLine, "alqkb", true},
		{"two-character escapes", "\x1b7a\x1bcb\x1bMc\x1b8", singleLine, "abc", true},
		{"ESC at the end", "abc\x1b", singleLine, "abc", true},
		{"8-bit CSI (U+009B)", "a\u009b2Jb", singleLine, "ab", true},
		{"8-bit OSC ended by 8-bit ST", "a\u009d0;t\u009cb", singleLine, "ab", true},
		{"other C1 removed", "a\u0085b\u0084c", singleLine, "abc", true},
		{"raw byte 0x9B (CSI on 8-bit terminals) replaced", "a\x9b2Jb", singleLine, "a\uFFFD2Jb", true},
		{"carriage return cannot overwrite a line", "all good\rPWNED!!!", multiLine, "all goodPWNED!!!", false},
		{"backspace, bell, NUL, DEL removed", "a\bb\ac\x00d\x7fe", singleLine, "abcde", true},
		{"single line: newline and tab become spaces", "line one\nline two\tcol", singleLine, "line one line two col", false},
		{"multi line: newline and tab kept", "{\n\t\"a\": 1\n}", multiLine, "{\n\t\"a\": 1\n}", false},
		{"multi line: CRLF becomes LF", "a\r\nb", multiLine, "a\nb", false},
		{"empty", "", singleLine, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := terminalSafe(tt.in, tt.mode)
			if got != tt.want || changed != tt.wantChanged {
				t.Errorf("terminalSafe(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.wantChanged)
			}
			assertTerminalSafe(t, got, tt.mode)
		})
	}
}

// FuzzTerminalSafe: whatever goes in, nothing a terminal acts on comes out.
func FuzzTerminalSafe(f *testing.F) {
	for _, s := range []string{"\x1b[31mred", "\x1b]0;t\x07", "\u009b2J", "\x9b", "a\rb\nc\td", "\x1bP\x1b\\", "\xc2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, mode := range []textMode{singleLine, multiLine} {
			got, _ := terminalSafe(s, mode)
			assertTerminalSafe(t, got, mode)
			if again, changed := terminalSafe(got, mode); again != got || changed {
				t.Errorf("not idempotent: %q → %q → %q", s, got, again)
			}
		}
	})
}

// assertTerminalSafe fails unless s is valid UTF-8 without control
// characters, but for newline and tab in multi-line text.
func assertTerminalSafe(t *testing.T, s string, mode textMode) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if (r == '\n' || r == '\t') && mode == multiLine {
			continue
		}
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			t.Errorf("%q still holds control character %U", s, r)
		}
	}
}

func TestEscapeC1_KeepsJSONValidAndTheSameValue(t *testing.T) {
	in := map[string]string{
		"last_error": "\x1b[2J\x1b]0;pwned\x07 and \u009b2J and \u0085 and \x7f",
		"body":       "Königs Cross",
	}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	// What encoding/json does itself: C0 escaped, C1 and DEL raw.
	if strings.Contains(string(raw), "\x1b") || !strings.Contains(string(raw), `\u001b`) {
		t.Fatalf("encoding/json should escape ESC: %s", raw)
	}
	if !strings.Contains(string(raw), "\u009b") {
		t.Fatalf("encoding/json now escapes C1 itself (%s): escapeC1 may be unnecessary", raw)
	}
	out := escapeC1(raw)
	for _, r := range string(out) {
		if r >= 0x80 && r <= 0x9f {
			t.Errorf("escaped JSON still holds %U: %s", r, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("escaped JSON does not parse: %v\n%s", err, out)
	}
	if back["last_error"] != in["last_error"] || back["body"] != in["body"] {
		t.Errorf("escaping changed the values: %q", back)
	}
}
