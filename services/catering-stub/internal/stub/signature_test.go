package stub_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/services/catering-stub/internal/stub"
	"github.com/railco/relay/services/catering-stub/internal/webhook"
)

const (
	relaySecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks test vector's
	nextSecret  = "whsec_dGhlIGtleSB0aGUgYmFja2VuZCByb3RhdGVzIHRvLCAzMg=="
)

// sign is a Standard Webhooks signer written here from the specification,
// sharing nothing with the stub's verifier: HMAC-SHA256 keyed with the
// base64 after "whsec_", over "id.timestamp.body", as "v1,<base64>".
func sign(secret, id string, ts int64, body string) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signed is a request as relay sends it: the headers, and the body sent
// (which a test may change after signing).
type signed struct {
	id, timestamp, signature, body string
}

func (h *harness) postSigned(r signed) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+"/catering", strings.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", r.id)
	for k, v := range map[string]string{"webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("POST /catering: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		h.t.Fatalf("answer %d %q is not JSON", resp.StatusCode, raw)
	}
	return resp.StatusCode, body
}

func verifying(t *testing.T, secrets string, logs io.Writer) *harness {
	t.Helper()
	v, err := webhook.NewVerifier(secrets)
	if err != nil {
		t.Fatal(err)
	}
	opts := stub.Options{Mode: defaultMode(), Quiet: true, Verifier: v}
	if logs != nil {
		opts.Quiet, opts.Logger = false, jsonLogger(logs)
	}
	return newHarnessWith(t, opts)
}

// With STUB_SIGNING_SECRET the stub takes a request signed by relay's
// secret, records "signature":"valid", and refuses with 401 and the reason
// a missing signature, a changed body, another secret's signature and a
// timestamp out of the 5 minute tolerance, recording none of them.
func TestCatering_VerifiesSignatures(t *testing.T) {
	var logs syncBuffer
	h := verifying(t, relaySecret, &logs)
	now := time.Now().Unix()
	const body = `{"passengerId":"241241d","class":"first"}`
	good := signed{"reg-1", strconv.FormatInt(now, 10), sign(relaySecret, "reg-1", now, body), body}

	if status, answer := h.postSigned(good); status != http.StatusOK || answer["success"] != true {
		t.Fatalf("a valid signature: %d %v, want 200", status, answer)
	}
	refusals := []struct {
		name   string
		req    signed
		reason string
	}{
		{"no signature", signed{"reg-2", good.timestamp, "", body}, "missing webhook-signature header"},
		{"no timestamp", signed{"reg-2", "", good.signature, body}, "missing webhook-timestamp header"},
		{"body changed after signing", signed{"reg-1", good.timestamp, good.signature, strings.Replace(body, "first", "third", 1)}, "no v1 signature"},
		{"another message's signature", signed{"reg-2", good.timestamp, good.signature, body}, "no v1 signature"},
		{"another secret", signed{"reg-2", good.timestamp, sign(nextSecret, "reg-2", now, body), body}, "no v1 signature"},
		{"six minutes old", signed{"reg-3", strconv.FormatInt(now-360, 10), sign(relaySecret, "reg-3", now-360, body), body}, "old, beyond the tolerance of 5m0s"},
		{"six minutes ahead", signed{"reg-3", strconv.FormatInt(now+360, 10), sign(relaySecret, "reg-3", now+360, body), body}, "in the future"},
		{"not a timestamp", signed{"reg-3", "soon", good.signature, body}, "not a Unix time"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, answer := h.postSigned(tt.req)
			msg, _ := answer["error"].(string)
			if status != http.StatusUnauthorized || !strings.HasPrefix(msg, "webhook signature refused: ") || !strings.Contains(msg, tt.reason) {
				t.Errorf("%d %v, want 401 saying %q", status, answer, tt.reason)
			}
		})
	}
	got := h.received()
	if got.Count != 1 || got.Deliveries != 1 || got.Failed != len(refusals) || got.Unauthorized != len(refusals) {
		t.Errorf("received %+v; want only reg-1, and %d refused", got, len(refusals))
	}
	if rec := h.record("reg-1"); rec.Signature != "valid" || rec.Body != body {
		t.Errorf("record %+v, want the body with \"signature\":\"valid\"", rec)
	}
	out := logs.String()
	if strings.Count(out, `"status":401`) != len(refusals) || !strings.Contains(out, `"outcome":"signature refused"`) {
		t.Errorf("the request log does not show the refusals:\n%s", out)
	}
	if strings.Contains(out, strings.TrimPrefix(relaySecret, "whsec_")) {
		t.Errorf("the log shows the secret:\n%s", out)
	}
}

// While keys rotate the stub may know both secrets, and relay may sign
// with both: any one matching signature is enough.
func TestCatering_AcceptsEitherSecretWhileKeysRotate(t *testing.T) {
	h := verifying(t, nextSecret+" "+relaySecret, nil)
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	for i, sig := range []string{
		sign(relaySecret, "rot-0", now, "{}"),
		sign(nextSecret, "rot-1", now, "{}"),
		"v1,bm90IHRoaXMgb25l " + sign(relaySecret, "rot-2", now, "{}"),
		"v2,ZnV0dXJl " + sign(nextSecret, "rot-3", now, "{}"),
	} {
		id := "rot-" + strconv.Itoa(i)
		if status, answer := h.postSigned(signed{id, ts, sig, "{}"}); status != http.StatusOK {
			t.Errorf("%s (%s): %d %v, want 200", id, sig, status, answer)
		}
	}
	if got := h.received(); got.Count != 4 || got.Unauthorized != 0 {
		t.Errorf("received %+v, want all four", got)
	}
}

// The reference libraries' test vector, sent over HTTP, passes the stub
// (whose clock is set to the vector's time).
func TestCatering_AcceptsTheReferenceVector(t *testing.T) {
	v, err := webhook.NewVerifier(relaySecret)
	if err != nil {
		t.Fatal(err)
	}
	v = v.WithClock(func() time.Time { return time.Unix(1614265330, 0) })
	h := newHarnessWith(t, stub.Options{Mode: defaultMode(), Quiet: true, Verifier: v})
	req := signed{"msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", `{"test": 2432232314}`}
	if status, answer := h.postSigned(req); status != http.StatusOK {
		t.Fatalf("the reference vector: %d %v", status, answer)
	}
	if sign(relaySecret, req.id, 1614265330, req.body) != req.signature {
		t.Fatal("the test's own signer disagrees with the reference vector")
	}
}

// Without STUB_SIGNING_SECRET nothing is checked, as before: unsigned and
// wrongly signed requests are taken, and records carry no signature field.
func TestCatering_WithoutSecretChecksNothing(t *testing.T) {
	h := newHarness(t, defaultMode())
	if status, _ := h.postSigned(signed{"plain", "", "", "{}"}); status != http.StatusOK {
		t.Errorf("unsigned: %d, want 200", status)
	}
	if status, _ := h.postSigned(signed{"forged", "1", "v1,Zm9yZ2Vk", "{}"}); status != http.StatusOK {
		t.Errorf("wrongly signed: %d, want 200", status)
	}
	_, raw := h.do(http.MethodGet, "/received", "")
	if strings.Contains(string(raw), "signature") || strings.Contains(string(raw), "unauthorized") {
		t.Errorf("GET /received shows signature fields without a secret: %s", raw)
	}
}
