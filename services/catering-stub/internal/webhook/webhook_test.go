package webhook_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/services/catering-stub/internal/webhook"
)

// The test vector of the Standard Webhooks reference libraries
// (libraries/go/webhook_test.go, TestWebhookSign).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = "1614265330"
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var signedAt = time.Unix(1614265330, 0)

func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	for k, v := range map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}

func verifier(t *testing.T, secrets string, now time.Time) *webhook.Verifier {
	t.Helper()
	v, err := webhook.NewVerifier(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return v.WithClock(func() time.Time { return now })
}

func TestVerify(t *testing.T) {
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("the backend's next key, 32 bytes"))
	tests := []struct {
		name    string
		secrets string
		now     time.Time
		h       http.Header
		body    string
		reason  string // "" for valid
	}{
		{"reference vector", vectorSecret, signedAt, headers(vectorID, vectorTimestamp, vectorSignature), vectorPayload, ""},
		{"4m59s later", vectorSecret, signedAt.Add(4*time.Minute + 59*time.Second), headers(vectorID, vectorTimestamp, vectorSignature), vectorPayload, ""},
		{"4m59s early", vectorSecret, signedAt.Add(-4*time.Minute - 59*time.Second), headers(vectorID, vectorTimestamp, vectorSignature), vectorPayload, ""},
		{"among other signatures", vectorSecret, signedAt, headers(vectorID, vectorTimestamp, "v2,abc v1,bm90IGl0 "+vectorSignature), vectorPayload, ""},
		{"second of two secrets", other + " " + vectorSecret, signedAt, headers(vectorID, vectorTimestamp, vectorSignature), vectorPayload, ""},
		{"tampered body", vectorSecret, signedAt, headers(vectorID, vectorTimestamp, vectorSignature), `{"test": 2432232315}`, "no v1 signature"},
		{"other id", vectorSecret, signedAt, headers("msg_other", vectorTimestamp, vectorSignature), vectorPayload, "no v1 signature"},
		{"other timestamp", vectorSecret, signedAt, headers(vectorID, "1614265331", vectorSignature), vectorPayload, "no v1 signature"},
		{"unknown secret", other, signedAt, headers(vectorID, vectorTimestamp, vectorSignature), vectorPayload, "no v1 signature"},
		{"v2 only", vectorSecret, signedAt, headers(vectorID, vectorTimestamp, strings.Replace(vectorSignature, "v1,", "v2,", 1)), vectorPayload, "no v1 signature"},
		{"5m01s old", vectorSecret, signedAt.Add(5*time.Minute + time.Second), headers(vectorID, vectorTimestamp, vectorSignature), vectorPayload, "old, beyond the tolerance of 5m0s"},
		{"5m01s ahead", vectorSecret, signedAt.Add(-5*time.Minute - time.Second), headers(vectorID, vectorTimestamp, vectorSignature), vectorPayload, "in the future"},
		{"timestamp in ms", vectorSecret, signedAt, headers(vectorID, "1614265330000", vectorSignature), vectorPayload, "in the future"},
		{"timestamp not a number", vectorSecret, signedAt, headers(vectorID, "yesterday", vectorSignature), vectorPayload, "not a Unix time"},
		{"no signature", vectorSecret, signedAt, headers(vectorID, vectorTimestamp, ""), vectorPayload, "missing webhook-signature header"},
		{"no timestamp", vectorSecret, signedAt, headers(vectorID, "", vectorSignature), vectorPayload, "missing webhook-timestamp header"},
		{"no id", vectorSecret, signedAt, headers("", vectorTimestamp, vectorSignature), vectorPayload, "missing webhook-id header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifier(t, tt.secrets, tt.now).Verify(tt.h, []byte(tt.body))
			var werr *webhook.Error
			switch {
			case tt.reason == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.reason != "" && (!errors.As(err, &werr) || !strings.Contains(err.Error(), tt.reason)):
				t.Errorf("error %v, want one saying %q", err, tt.reason)
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	if v, err := webhook.NewVerifier("  "); v != nil || err != nil {
		t.Errorf("blank: %v, %v; want nothing to check", v, err)
	}
	for secrets, want := range map[string]string{
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":               "secret 1: want whsec_",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_%": "secret 2: the key after whsec_ is not standard base64",
		"whsec_c2hvcnQta2V5":                             "9 bytes is too short",
	} {
		_, err := webhook.NewVerifier(secrets)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", secrets, err, want)
			continue
		}
		if strings.Contains(err.Error(), "MfKQ9r8G") || strings.Contains(err.Error(), "c2hvcnQ") {
			t.Errorf("error %q shows a secret", err)
		}
	}
}
