package registration

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// knownFields are the names the case-folding rule compares keys with.
func knownFields() []string {
	return append(append(registrationFields[:len(registrationFields):len(registrationFields)], endpointFields[:]...), servingFields[:]...)
}

// TestKnownFields_AreASCIILetters guards what foldsTo relies on.
func TestKnownFields_AreASCIILetters(t *testing.T) {
	for _, name := range knownFields() {
		if name == "" || strings.IndexFunc(name, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') }) >= 0 {
			t.Errorf("known field %q is not made of ASCII letters only", name)
		}
	}
}

// TestFoldsTo_AgreesWithEqualFold checks foldsTo against strings.EqualFold
// (what encoding/json matches keys with) for every rune of the Basic
// Multilingual Plane against every ASCII letter: the Kelvin sign K and the
// long s ſ fold to letters, other runes do not.
func TestFoldsTo_AgreesWithEqualFold(t *testing.T) {
	var folding []rune
	for r := rune(0); r <= 0xffff; r++ {
		key := []byte(string(r))
		for c := byte('A'); c <= 'z'; c++ {
			if c == 'Z'+1 {
				c = 'a'
			}
			name := string(c)
			got, want := foldsTo(key, name), strings.EqualFold(string(r), name)
			if got != want {
				t.Fatalf("foldsTo(%q, %q) = %v, strings.EqualFold says %v", string(r), name, got, want)
			}
			if got && r >= utf8.RuneSelf && c >= 'a' {
				folding = append(folding, r)
			}
		}
	}
	if string(folding) != "\u017f\u212a" {
		t.Errorf("non-ASCII runes folding to ASCII letters: %+q, want the long s and the Kelvin sign", string(folding))
	}
}

// TestFoldsTo_WholeKeys checks foldsTo on keys of many lengths and spellings
// against every known field.
func TestFoldsTo_WholeKeys(t *testing.T) {
	keys := []string{"", "a", "ſ", "K", "\U0001D42C", "\xff"}
	for _, name := range knownFields() {
		keys = append(keys,
			name, strings.ToUpper(name), strings.ToLower(name), strings.ToUpper(name[:1])+name[1:],
			strings.ReplaceAll(name, "s", "ſ"), strings.ReplaceAll(strings.ToUpper(name), "S", "ſ"),
			name[:len(name)-1], name+"s", name+"ſ", "ſ"+name, name[1:], name[:1]+"\u212a"+name[2:],
			strings.Repeat("ſ", len(name)), strings.Repeat("\u212a", len(name)), strings.Repeat("\U0001D42C", len(name)),
			strings.Repeat("\u212a", len(name)+1), name[:len(name)-1]+"\U0001D42C",
		)
	}
	for _, key := range keys {
		for _, name := range knownFields() {
			if got, want := foldsTo([]byte(key), name), strings.EqualFold(key, name); got != want {
				t.Errorf("foldsTo(%q, %q) = %v, strings.EqualFold says %v", key, name, got, want)
			}
		}
	}
}
