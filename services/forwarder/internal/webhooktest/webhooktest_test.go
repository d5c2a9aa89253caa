package webhooktest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/railco/relay/services/forwarder/internal/webhooktest"
)

// The verifier is right about the reference libraries' test vector.
func TestVerify_ReferenceVector(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v2,ignored v1,bm90IGl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)
	signedAt := time.Unix(1614265330, 0)

	if err := webhooktest.Verify(secret, h, body, signedAt.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("the reference vector: %v", err)
	}
	if err := webhooktest.Verify(secret, h, []byte(`{"test": 2432232315}`), signedAt, 0); err == nil {
		t.Error("a tampered body verified")
	}
	if err := webhooktest.Verify(secret, h, body, signedAt.Add(6*time.Minute), 5*time.Minute); err == nil {
		t.Error("a stale timestamp verified")
	}
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	if err := webhooktest.Verify("whsec_"+"YW5vdGhlciBrZXkgb2YgMzIgYnl0ZXMsIGV4YWN0bHk=", h, body, signedAt, 0); err == nil {
		t.Error("another secret verified")
	}
}
