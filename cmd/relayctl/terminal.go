package main

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// What relayctl prints in text mode comes partly from strangers: a letter's
// body and headers from whoever published it, its last error from the
// Catering backend's answer, error texts from the broker and its management
// API. A terminal obeys control sequences wherever they appear, so a body
// holding "\x1b]0;…\a" or "\x1b[2J" could retitle the operator's window,
// clear the screen, move the cursor to overwrite what relayctl printed, or,
// on some terminals, answer back as if typed. Everything that did not come
// from relayctl itself therefore goes through terminalSafe before it is
// printed; --json output goes through escapeC1 (encoding/json escapes the
// C0 controls, ESC included, but leaves C1 controls raw).

// textMode says which layout characters a printed value may keep.
type textMode int

const (
	// singleLine is for table cells, headers and messages: tab, newline and
	// the other whitespace controls become a space, so a value can neither
	// break a table's columns nor start a line that looks like relayctl's own.
	singleLine textMode = iota
	// multiLine is for a body: newline and tab stay; carriage return goes, so
	// a line cannot be overwritten from its start.
	multiLine
)

// terminalSafe returns s without terminal control sequences and control
// characters: escape sequences (CSI, OSC, DCS, SOS, PM, APC and two-character
// escapes, in their 7-bit ESC and 8-bit C1 forms) are removed whole, other C0
// and C1 characters and DEL are removed, and bytes that are not UTF-8 become
// U+FFFD (a lone byte 0x9B is CSI to a terminal that is not in UTF-8 mode).
// changed reports whether anything but whitespace was removed or replaced.
func terminalSafe(s string, mode textMode) (out string, changed bool) {
	if isPlain(s) {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
			changed = true
			i++
		case r == '\n' || r == '\t':
			if mode == multiLine {
				b.WriteRune(r)
			} else {
				b.WriteByte(' ')
			}
			i += size
		case r == '\r' || r == '\v' || r == '\f':
			if mode == singleLine {
				b.WriteByte(' ')
			}
			i += size
		case r == 0x1b: // ESC
			i += escapeLen(s[i:])
			changed = true
		case r >= 0x80 && r <= 0x9f: // C1
			i += c1Len(s[i:], r, size)
			changed = true
		case r < 0x20 || r == 0x7f:
			i += size
			changed = true
		default:
			b.WriteString(s[i : i+size])
			i += size
		}
	}
	return b.String(), changed
}

// safe is terminalSafe without the report, for one line of a table or message.
func safe(s string) string {
	out, _ := terminalSafe(s, singleLine)
	return out
}

// isPlain reports whether s is printable ASCII only: the common case, left as is.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// escapeLen returns the length of the escape sequence at the start of s,
// which begins with ESC (ECMA-48 section 5.3).
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch c := s[1]; {
	case c == '[': // CSI
		return 2 + csiLen(s[2:])
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_': // OSC, DCS, SOS, PM, APC
		return 2 + stringLen(s[2:])
	case c >= 0x20 && c <= 0x2f: // intermediate bytes, then a final byte: ESC ( B
		n := 1
		for n < len(s) && s[n] >= 0x20 && s[n] <= 0x2f {
			n++
		}
		if n < len(s) && s[n] >= 0x30 && s[n] <= 0x7e {
			n++
		}
		return n
	case c >= 0x30 && c <= 0x7e: // ESC 7, ESC c, ESC M, ...
		return 2
	default: // ESC before anything else: the ESC alone
		return 1
	}
}

// c1Len returns the length of what the C1 control r (size bytes, at the start
// of s) introduces: a whole sequence for the 8-bit CSI and string
// introducers, else the control alone.
func c1Len(s string, r rune, size int) int {
	switch r {
	case 0x9b: // CSI
		return size + csiLen(s[size:])
	case 0x9d, 0x90, 0x98, 0x9e, 0x9f: // OSC, DCS, SOS, PM, APC
		return size + stringLen(s[size:])
	}
	return size
}

// csiLen returns the length of a control sequence's parameter and
// intermediate bytes and its final byte. A sequence cut short by any other
// byte ends before it: that byte is printed (or removed) on its own.
func csiLen(s string) int {
	n := 0
	for n < len(s) && s[n] >= 0x20 && s[n] <= 0x3f {
		n++
	}
	if n < len(s) && s[n] >= 0x40 && s[n] <= 0x7e {
		n++
	}
	return n
}

// stringLen returns the length of a control string up to and including its
// terminator: ST (ESC \ or C1 0x9C) or BEL, which xterm also accepts. An
// unterminated string is not swallowed: its introducer alone is removed,
// the rest printed as text, which no terminal can take for a sequence once
// the ESC is gone.
func stringLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == 0x07:
			return i + 1
		case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
			return i + 2
		case s[i] == 0xc2 && i+1 < len(s) && s[i+1] == 0x9c: // U+009C in UTF-8
			return i + 2
		}
	}
	return 0
}

// escapeC1 rewrites the C1 control characters (U+0080 to U+009F) in JSON
// produced by encoding/json as \u escapes. encoding/json escapes every C0
// control but writes C1 ones raw, and some terminals take U+009B for CSI.
// Outside strings JSON is ASCII, so every such rune is inside a string,
// where the escape means the same character.
func escapeC1(js []byte) []byte {
	if !bytes.Contains(js, []byte{0xc2}) {
		return js
	}
	var out bytes.Buffer
	out.Grow(len(js))
	for i := 0; i < len(js); {
		r, size := utf8.DecodeRune(js[i:])
		if r >= 0x80 && r <= 0x9f {
			fmt.Fprintf(&out, `\u%04x`, r)
		} else {
			out.Write(js[i : i+size])
		}
		i += size
	}
	return out.Bytes()
}
