package signing_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/railco/relay/services/forwarder/internal/signing"
)

// The test vector of the Standard Webhooks reference libraries
// (github.com/standard-webhooks/standard-webhooks, libraries/go/webhook_test.go,
// TestWebhookSign; the other languages' libraries test the same values).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// reference computes a signature straight from the specification, with
// nothing of package signing: base64-decode what follows whsec_, HMAC-SHA256
// "id.timestamp.body" with it, base64 the sum.
func reference(t *testing.T, secret, id, timestamp, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestSigner_ReferenceVector(t *testing.T) {
	if got := reference(t, vectorSecret, vectorID, "1614265330", vectorPayload); got != vectorSignature {
		t.Fatalf("the independent computation gives %s, the reference libraries %s", got, vectorSignature)
	}
	s, err := signing.New(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.AppendSignature(nil, vectorID, vectorTimestamp, []byte(vectorPayload))); got != vectorSignature {
		t.Errorf("signature %s, want %s", got, vectorSignature)
	}
	out, at := s.AppendHeaders([]byte("x"), vectorID, vectorTimestamp, []byte(vectorPayload))
	if string(out[1:at]) != "1614265330" || string(out[at:]) != vectorSignature {
		t.Errorf("AppendHeaders = %q (signature at %d)", out, at)
	}
}

// Several secrets give one signature each, in order, space-separated; a
// Signer used again and again (its state is pooled) gives the same answers.
func TestSigner_OneSignaturePerSecret(t *testing.T) {
	second := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another key of 32 bytes, exactly"))
	s, err := signing.New("  " + vectorSecret + "\t" + second + " ")
	if err != nil {
		t.Fatal(err)
	}
	if s.Keys() != 2 {
		t.Fatalf("%d keys, want 2", s.Keys())
	}
	bodies := []string{vectorPayload, "", strings.Repeat("é", 5000)}
	for range 3 {
		for _, body := range bodies {
			want := reference(t, vectorSecret, "id-1", "1700000000", body) + " " + reference(t, second, "id-1", "1700000000", body)
			if got := string(s.AppendSignature(nil, "id-1", 1700000000, []byte(body))); got != want {
				t.Errorf("body of %d bytes: %s, want %s", len(body), got, want)
			}
		}
	}
}

func TestNew_BlankIsUnsigned(t *testing.T) {
	for _, v := range []string{"", "   "} {
		if s, err := signing.New(v); s != nil || err != nil {
			t.Errorf("New(%q) = %v, %v; want nil, nil", v, s, err)
		}
	}
}

// Bad secrets are refused with the reason and their position, never their text.
func TestNew_RefusesBadSecretsWithoutShowingThem(t *testing.T) {
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("only-16-bytes-ab"))
	tests := map[string]struct{ secrets, want string }{
		"no prefix":      {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `does not start with "whsec_"`},
		"not base64":     {"whsec_not*base64*at*all*but*long*enough", "not standard base64"},
		"url-safe":       {"whsec_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-", "not standard base64"},
		"too short":      {short, "16 bytes, want at least 24"},
		"second of two":  {vectorSecret + " whsec_s3cr3t", "secret 2 of 2"},
		"empty key":      {"whsec_", "0 bytes"},
		"prefix case":    {"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start"},
		"shown position": {"bad " + vectorSecret, "secret 1 of 2"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := signing.New(tt.secrets)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
			for _, f := range strings.Fields(tt.secrets) {
				if body := strings.TrimPrefix(f, "whsec_"); len(body) > 3 && strings.Contains(err.Error(), body) {
					t.Errorf("error %q shows the secret", err)
				}
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	s, err := signing.New(vectorSecret)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 600))
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.AppendHeaders(buf[:0], "0193a7c2-7d2e-7cc0-b6a4-2b1f0d1e9f11", 1700000000, body)
	}
}
