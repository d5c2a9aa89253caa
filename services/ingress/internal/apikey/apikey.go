// Package apikey holds the ingress's client API keys: which clients may
// register, read from INGRESS_API_KEYS_FILE, and reloaded without a restart.
//
// The file has one client per line, "name:key"; blank lines and lines
// starting with '#' are ignored:
//
//	# Railco's booking system, rotated 2026-11
//	railco-booking:3q2+7w…
//	railco-mobile:Zm9vYmFy…
//
// Invariants:
//   - A key is never printed: not in errors (they name the line), not in logs.
//   - Lookup takes the same time whichever key matched, or none: it compares
//     the SHA-256 of the presented key with every stored key's, in constant
//     time, so neither which key matched nor how much of it nor its length
//     shows in the timing.
//   - A Set never changes; a File swaps in a new Set atomically, so a request
//     sees the old keys or the new ones, never a mix, and a reload that fails
//     leaves the old Set in place.
package apikey

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"unsafe"
)

// Anonymous is the client name of requests to an ingress without keys. No
// client in a file may take it.
const Anonymous = "anonymous"

// Limits of a keys file's lines.
const (
	// maxNameLen bounds a client name: it is a metric label and a log field.
	maxNameLen = 64
	// minKeyLen rejects keys short enough to guess; 16 characters of base64
	// are 96 bits. A key generated with `openssl rand -base64 32` has 44.
	minKeyLen = 16
	// maxKeyLen bounds a key well inside the ingress's 16 KiB of headers.
	maxKeyLen = 512
)

// Set is an immutable set of clients and their keys.
type Set struct {
	names []string
	sums  [][sha256.Size]byte // sums[i] is the SHA-256 of names[i]'s key
}

// Len returns the number of clients.
func (s *Set) Len() int { return len(s.names) }

// Names returns the client names, in the file's order.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Lookup returns the name of the client whose key is key. Its time depends
// on the number of clients and on len(key), never on which client matched
// or on how much of a stored key key shares. It does not allocate.
func (s *Set) Lookup(key string) (name string, ok bool) {
	// The key is only read; hashing the string's bytes in place spares a
	// copy (an allocation for keys over 32 bytes) on every request.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key)))
	found, idx := 0, 0
	for i := range s.sums {
		eq := subtle.ConstantTimeCompare(sum[:], s.sums[i][:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return "", false
	}
	return s.names[idx], true
}

// ErrNoClients: the file holds no client at all, which is a mistake (an
// empty secret, a wrong path): an ingress meant to be open has no
// INGRESS_API_KEYS_FILE.
var ErrNoClients = errors.New("no clients: every line is blank or a comment")

// Parse reads a keys file's content. Its error names every bad line by
// number, never its content (the line may hold a key).
func Parse(content []byte) (*Set, error) {
	s := &Set{}
	var errs []error
	nameLine := map[string]int{}
	keyLine := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 1024), len(content)+1)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		rawName, rawKey, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: want name:key", n))
			continue
		}
		name, key := string(bytes.TrimSpace(rawName)), bytes.TrimSpace(rawKey)
		bad := false
		if err := checkName(name); err != nil {
			errs = append(errs, fmt.Errorf("line %d: client name %w", n, err))
			bad = true
		}
		if err := checkKey(key); err != nil {
			errs = append(errs, fmt.Errorf("line %d: the key %w", n, err))
			bad = true
		}
		if bad {
			continue
		}
		sum := sha256.Sum256(key)
		if first, dup := nameLine[name]; dup {
			// Not named: with its columns swapped by mistake, a line's
			// "name" is a key.
			errs = append(errs, fmt.Errorf("line %d: the client name is already on line %d", n, first))
			continue
		}
		if first, dup := keyLine[sum]; dup {
			errs = append(errs, fmt.Errorf("line %d: the key is already on line %d (each client needs a key of its own)", n, first))
			continue
		}
		nameLine[name], keyLine[sum] = n, n
		s.names = append(s.names, name)
		s.sums = append(s.sums, sum)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(s.names) == 0 {
		return nil, ErrNoClients
	}
	return s, nil
}

// checkName accepts names that are safe as a metric label and a log field.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("is longer than %d characters", maxNameLen)
	case name == Anonymous:
		return fmt.Errorf("%q is reserved for requests to an ingress without keys", Anonymous)
	}
	for i := range len(name) {
		if c := name[i]; !isAlnum(c) && (i == 0 || (c != '-' && c != '_' && c != '.')) {
			return errors.New("must be letters, digits, '-', '_' or '.', starting with a letter or digit")
		}
	}
	return nil
}

// checkKey accepts what a client can send as a bearer token (RFC 6750's
// b64token: letters, digits, -._~+/, then '=' padding) of a length that is
// hard to guess. The error says nothing about the key but its length.
func checkKey(key []byte) error {
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return fmt.Errorf("must be %d to %d characters long", minKeyLen, maxKeyLen)
	}
	padding := false
	for _, c := range key {
		switch {
		case c == '=':
			padding = true
		case padding || !(isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'):
			return errors.New("must be letters, digits and -._~+/ (then '=' padding only), as bearer tokens are (RFC 6750)")
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
