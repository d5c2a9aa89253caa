// Package signing signs deliveries the way Standard Webhooks specifies
// (https://www.standardwebhooks.com/), so that a backend can tell relay's
// requests from anyone else's with an existing library.
//
// Each request carries three headers:
//
//	webhook-id:        the message id (the same as Idempotency-Key)
//	webhook-timestamp: the attempt's time, in Unix seconds
//	webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
//
// A secret is written "whsec_" followed by the key in standard base64. With
// several secrets (space-separated) every request carries one signature per
// secret, separated by a space, so that a backend can move to a new secret
// while relay still signs with the old one: add the new secret to
// CATERING_SIGNING_SECRET, switch the backend, then drop the old one.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// Headers set on a signed request, as Standard Webhooks names them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret.
const SecretPrefix = "whsec_"

// MinKeyBytes is the shortest key accepted: Standard Webhooks asks for keys
// of 24 to 64 bytes; a shorter one is guessable.
const MinKeyBytes = 24

// Signer signs requests with one or more keys. It is safe for concurrent use.
type Signer struct {
	keys  [][]byte
	state sync.Pool // of *macs: keyed HMACs and a buffer, reused so that signing allocates nothing
}

// macs is one signing's worth of working state.
type macs struct {
	hmacs []hash.Hash
	buf   []byte
}

// New parses secrets: one or more "whsec_<base64 key>", separated by
// spaces. Blank secrets give a nil Signer and no error: requests go out
// unsigned. The errors never hold the secrets, only their position.
func New(secrets string) (*Signer, error) {
	fields := strings.Fields(secrets)
	if len(fields) == 0 {
		return nil, nil
	}
	s := &Signer{}
	var errs []error
	for i, f := range fields {
		key, err := ParseSecret(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %d of %d: %w", i+1, len(fields), err))
			continue
		}
		s.keys = append(s.keys, key)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.state.New = func() any {
		m := &macs{hmacs: make([]hash.Hash, len(s.keys)), buf: make([]byte, 0, 128)}
		for i, k := range s.keys {
			// hmac.New hashes the padded key once; Reset brings the
			// keyed state back without doing it again.
			m.hmacs[i] = hmac.New(sha256.New, k)
		}
		return m
	}
	return s, nil
}

// ParseSecret returns the key of one "whsec_<base64>" secret. Its error
// never holds the secret.
func ParseSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("does not start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("the part after %q is not standard base64", SecretPrefix)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("the key is %d bytes, want at least %d (e.g. whsec_$(head -c 32 /dev/urandom | base64))", len(key), MinKeyBytes)
	}
	return key, nil
}

// Keys is how many signatures each request carries.
func (s *Signer) Keys() int { return len(s.keys) }

// AppendHeaders appends the webhook-timestamp value, then the
// webhook-signature value, to dst and returns the result and where the
// signature starts: one append for both, so that the caller makes one string
// of them and slices it.
func (s *Signer) AppendHeaders(dst []byte, id string, timestamp int64, body []byte) (out []byte, sigAt int) {
	dst = strconv.AppendInt(dst, timestamp, 10)
	sigAt = len(dst)
	return s.AppendSignature(dst, id, timestamp, body), sigAt
}

// AppendSignature appends the webhook-signature value for a request with
// this id, timestamp and body to dst: "v1,<base64>" per key, space-separated.
func (s *Signer) AppendSignature(dst []byte, id string, timestamp int64, body []byte) []byte {
	m := s.state.Get().(*macs)
	defer s.state.Put(m)
	// The signed content is "<id>.<timestamp>.<body>"; the body is written
	// as is, never copied.
	m.buf = append(m.buf[:0], id...)
	m.buf = append(m.buf, '.')
	m.buf = strconv.AppendInt(m.buf, timestamp, 10)
	m.buf = append(m.buf, '.')
	prefix := len(m.buf)
	for i, h := range m.hmacs {
		h.Reset()
		h.Write(m.buf[:prefix])
		h.Write(body)
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, "v1,"...)
		m.buf = h.Sum(m.buf[:prefix]) // the sum lands behind the prefix: no allocation
		dst = base64.StdEncoding.AppendEncode(dst, m.buf[prefix:])
	}
	return dst
}
