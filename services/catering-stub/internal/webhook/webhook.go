// Package webhook verifies that a request was signed the way Standard
// Webhooks specifies (https://www.standardwebhooks.com/), as a Catering
// backend would check that a delivery comes from relay. It is written from
// the specification, independently of the forwarder's signer, so that the
// two check each other.
//
// A signed request carries:
//
//	webhook-id:        the message id
//	webhook-timestamp: when it was signed, in Unix seconds
//	webhook-signature: one or more "v1,<base64 HMAC-SHA256>", space-separated
//
// The HMAC is over "<webhook-id>.<webhook-timestamp>.<body>", keyed with the
// base64-decoded part of a "whsec_…" secret. One matching v1 signature is
// enough (the sender signs with every secret while keys rotate); signatures
// of other versions are ignored. A timestamp further than Tolerance from now
// is refused, so that a captured request cannot be replayed later.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far a webhook-timestamp may be from the receiver's clock,
// either way; the specification's recommendation.
const Tolerance = 5 * time.Minute

// minKeyBytes is the shortest key the specification allows.
const minKeyBytes = 24

// Verifier checks signatures against one or more secrets. It is safe for
// concurrent use.
type Verifier struct {
	keys [][]byte
	now  func() time.Time
}

// NewVerifier parses secrets ("whsec_<base64>", space-separated). Blank
// secrets give a nil Verifier: nothing is checked. Errors name a secret by
// its position, never by its text.
func NewVerifier(secrets string) (*Verifier, error) {
	fields := strings.Fields(secrets)
	if len(fields) == 0 {
		return nil, nil
	}
	v := &Verifier{now: time.Now}
	var errs []error
	for i, f := range fields {
		b64, ok := strings.CutPrefix(f, "whsec_")
		key, err := base64.StdEncoding.DecodeString(b64)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("secret %d: want whsec_ followed by the key in base64", i+1))
		case err != nil:
			errs = append(errs, fmt.Errorf("secret %d: the key after whsec_ is not standard base64", i+1))
		case len(key) < minKeyBytes:
			errs = append(errs, fmt.Errorf("secret %d: a key of %d bytes is too short (at least %d)", i+1, len(key), minKeyBytes))
		default:
			v.keys = append(v.keys, key)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return v, nil
}

// WithClock returns a copy of v that takes now as the time.
func (v *Verifier) WithClock(now func() time.Time) *Verifier {
	c := *v
	c.now = now
	return &c
}

// Error says why a request is refused; its text never holds a secret.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

// Verify returns nil when h holds a valid signature of body by one of the
// secrets, made within Tolerance of now, and an *Error saying why not
// otherwise.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	for _, hv := range [...][2]string{{"webhook-id", id}, {"webhook-timestamp", ts}, {"webhook-signature", sigs}} {
		if hv[1] == "" {
			return &Error{Reason: "missing " + hv[0] + " header"}
		}
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return &Error{Reason: fmt.Sprintf("webhook-timestamp %q is not a Unix time in seconds", ts)}
	}
	signedAt := time.Unix(secs, 0)
	switch age := v.now().Sub(signedAt); {
	case age > Tolerance:
		return &Error{Reason: fmt.Sprintf("webhook-timestamp %s is %s old, beyond the tolerance of %s (a replay, or clocks apart)", ts, age.Round(time.Second), Tolerance)}
	case age < -Tolerance:
		return &Error{Reason: fmt.Sprintf("webhook-timestamp %s is %s in the future, beyond the tolerance of %s (clocks apart)", ts, (-age).Round(time.Second), Tolerance)}
	}
	signed := make([]byte, 0, len(id)+len(ts)+len(body)+2)
	signed = append(append(append(append(append(signed, id...), '.'), ts...), '.'), body...)
	for _, key := range v.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(signed)
		want := mac.Sum(nil)
		for _, sig := range strings.Fields(sigs) {
			version, b64, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return &Error{Reason: "no v1 signature in webhook-signature matches (a changed body, or a secret the backend does not have)"}
}
