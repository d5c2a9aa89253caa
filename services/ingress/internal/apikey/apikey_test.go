package apikey_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/railco/relay/services/ingress/internal/apikey"
)

// Keys of the tests: long enough, and easy to grep for in error texts.
const (
	keyBooking = "K3y-booking-0123456789abcdef"
	keyMobile  = "K3y-mobile+0123456789/abcdef=="
	keyPartner = "K3y-partner_0123456789.abcdef~"
)

func TestParse_ReadsClientsAndSkipsCommentsAndBlanks(t *testing.T) {
	content := "# relay's clients\n" +
		"\n" +
		"railco-booking:" + keyBooking + "\n" +
		"   # indented comment\r\n" +
		"  railco.mobile : " + keyMobile + "  \r\n" + // spaces around, CRLF
		"partner_1:" + keyPartner // no final newline
	set, err := apikey.Parse([]byte(content))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := set.Names(), []string{"railco-booking", "railco.mobile", "partner_1"}; !slices.Equal(got, want) {
		t.Errorf("Names %q, want %q", got, want)
	}
	tests := []struct {
		key    string
		client string
	}{
		{keyBooking, "railco-booking"},
		{keyMobile, "railco.mobile"},
		{keyPartner, "partner_1"},
		{"", ""},
		{keyBooking[:len(keyBooking)-1], ""}, // a prefix
		{keyBooking + "x", ""},               // longer
		{strings.ToLower(keyBooking), ""},    // keys are case-sensitive
		{" " + keyBooking, ""},               // exact bytes only
	}
	for _, tt := range tests {
		name, ok := set.Lookup(tt.key)
		if name != tt.client || ok != (tt.client != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.key, name, ok, tt.client)
		}
	}
}

func TestParse_RejectsBadFilesNamingLinesNeverKeys(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"no colon", "# c\n" + keyBooking + "\n", []string{"line 2: want name:key"}},
		{"empty name", ":" + keyBooking, []string{"line 1: client name is empty"}},
		{"name with a space", "railco booking:" + keyBooking, []string{"line 1: client name must be letters"}},
		{"name starting with a dash", "-railco:" + keyBooking, []string{"line 1: client name must be letters"}},
		{"name too long", strings.Repeat("n", 65) + ":" + keyBooking, []string{"line 1: client name is longer than 64"}},
		{"reserved name", "anonymous:" + keyBooking, []string{`line 1: client name "anonymous" is reserved`}},
		{"empty key", "railco:", []string{"line 1: the key must be 16 to 512 characters"}},
		{"short key", "railco:" + keyBooking[:15], []string{"line 1: the key must be 16 to 512 characters"}},
		{"long key", "railco:" + strings.Repeat("k", 513), []string{"line 1: the key must be 16 to 512 characters"}},
		{"key with a space", "railco:" + keyBooking + " " + keyMobile, []string{"line 1: the key must be letters, digits"}},
		{"key with a colon", "railco:" + keyBooking + ":x", []string{"line 1: the key must be letters, digits"}},
		{"padding inside the key", "railco:abc=" + keyBooking, []string{"line 1: the key must be letters, digits"}},
		{"non-ASCII key", "railco:" + keyBooking + "é", []string{"line 1: the key must be letters, digits"}},
		{"duplicate name", "a:" + keyBooking + "\nb:" + keyMobile + "\na:" + keyPartner, []string{"line 3: the client name is already on line 1"}},
		{"duplicate key", "a:" + keyBooking + "\n\nb:" + keyBooking, []string{"line 3: the key is already on line 1"}},
		{"every bad line at once", "x\nrailco:" + keyBooking + "\n:" + keyMobile + "\nanonymous:" + keyPartner,
			[]string{"line 1:", "line 3:", "line 4:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := apikey.Parse([]byte(tt.content))
			if err == nil {
				t.Fatalf("Parse: %d clients, want an error", set.Len())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, key := range []string{keyBooking, keyMobile, keyPartner, keyBooking[:15]} {
				if strings.Contains(err.Error(), key) {
					t.Errorf("error %q shows a key", err)
				}
			}
		})
	}
}

func TestParse_NoClientsIsAnError(t *testing.T) {
	for _, content := range []string{"", "\n\n", "# only a comment\n\n# and another\n"} {
		if _, err := apikey.Parse([]byte(content)); !errors.Is(err, apikey.ErrNoClients) {
			t.Errorf("Parse(%q) = %v, want ErrNoClients", content, err)
		}
	}
}

func TestSet_LookupDoesNotAllocate(t *testing.T) {
	set := parse(t, 10)
	key := fmt.Sprintf("key-%04d-0123456789abcdefghijklmnopqrstuvwxyz", 7) // longer than 32 bytes
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := set.Lookup(key); !ok {
			t.Fatal("Lookup: no match")
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times, want 0", allocs)
	}
}

// parse returns a Set of n clients, client-i with key key-i-0123….
func parse(t testing.TB, n int) *apikey.Set {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "client-%d:key-%04d-0123456789abcdefghijklmnopqrstuvwxyz\n", i, i)
	}
	set, err := apikey.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// BenchmarkLookup is the cost of checking a key on every request: one
// SHA-256 of the key and a constant-time compare against every client's.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		set := parse(b, n)
		hit := fmt.Sprintf("key-%04d-0123456789abcdefghijklmnopqrstuvwxyz", n-1)
		b.Run(fmt.Sprintf("clients=%d/hit", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := set.Lookup(hit); !ok {
					b.Fatal("no match")
				}
			}
		})
		b.Run(fmt.Sprintf("clients=%d/miss", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := set.Lookup("wrong-key-0123456789abcdefghijklmnopqrstuvwxyz"); ok {
					b.Fatal("match")
				}
			}
		})
	}
}
