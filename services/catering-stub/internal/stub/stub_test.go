package stub_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/services/catering-stub/internal/stub"
)

func TestCatering_RecordsDelivery(t *testing.T) {
	h := newHarness(t, defaultMode())
	before := time.Now()

	status, body, err := h.post(context.Background(), h.client, delivery{
		key: "order-1", attempt: 3, body: `{"id":1}`, contentType: "application/json; charset=utf-8",
	})
	if err != nil {
		t.Fatalf("POST /catering: %v", err)
	}
	if status != http.StatusOK || body != `{"success":true}`+"\n" {
		t.Fatalf("POST /catering = %d %q, want 200 {\"success\":true}", status, body)
	}

	got := h.received()
	if got.Count != 1 || got.Deliveries != 1 || got.Failed != 0 || len(got.Items) != 1 {
		t.Fatalf("received = %+v, want one record, one delivery, nothing failed", got)
	}
	rec := got.Items[0]
	if rec.IdempotencyKey != "order-1" || rec.Attempt != 3 || rec.Deliveries != 1 ||
		rec.Body != `{"id":1}` || rec.ContentType != "application/json; charset=utf-8" {
		t.Fatalf("record = %+v", rec)
	}
	if rec.FirstReceivedAt.Before(before.Add(-time.Second)) || !rec.LastReceivedAt.Equal(rec.FirstReceivedAt) {
		t.Fatalf("timestamps first=%v last=%v, want both the arrival time (after %v)",
			rec.FirstReceivedAt, rec.LastReceivedAt, before)
	}
}

func TestCatering_DedupesByIdempotencyKey(t *testing.T) {
	tests := []struct {
		name           string
		sends          []delivery
		wantCount      int
		wantDeliveries int
		// wantPerKey maps keys to their expected deliveries and attempt.
		wantPerKey map[string][2]int
	}{
		{
			name:           "same key twice is one record with two deliveries",
			sends:          []delivery{{key: "a", attempt: 1, body: "{}"}, {key: "a", attempt: 2, body: "{}"}},
			wantCount:      1,
			wantDeliveries: 2,
			wantPerKey:     map[string][2]int{"a": {2, 2}},
		},
		{
			name:           "different keys are different records",
			sends:          []delivery{{key: "a", attempt: 1}, {key: "b", attempt: 1}},
			wantCount:      2,
			wantDeliveries: 2,
			wantPerKey:     map[string][2]int{"a": {1, 1}, "b": {1, 1}},
		},
		{
			name:           "attempt is the latest request's even when lower",
			sends:          []delivery{{key: "a", attempt: 5}, {key: "a", attempt: 2}, {key: "a"}},
			wantCount:      1,
			wantDeliveries: 3,
			wantPerKey:     map[string][2]int{"a": {3, 0}},
		},
		{
			name:           "requests without a key each get their own record",
			sends:          []delivery{{body: "{}"}, {body: "{}"}},
			wantCount:      2,
			wantDeliveries: 2,
			wantPerKey:     map[string][2]int{"no-key-1": {1, 0}, "no-key-2": {1, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, defaultMode())
			for _, d := range tt.sends {
				if status := h.deliver(d); status != http.StatusOK {
					t.Fatalf("POST %+v = %d, want 200", d, status)
				}
			}
			got := h.received()
			if got.Count != tt.wantCount || got.Deliveries != tt.wantDeliveries || len(got.Items) != tt.wantCount {
				t.Fatalf("received count=%d deliveries=%d items=%d, want %d, %d, %d",
					got.Count, got.Deliveries, len(got.Items), tt.wantCount, tt.wantDeliveries, tt.wantCount)
			}
			for key, want := range tt.wantPerKey {
				rec := h.record(key)
				if rec.Deliveries != want[0] || rec.Attempt != want[1] {
					t.Errorf("record %q deliveries=%d attempt=%d, want %d and %d",
						key, rec.Deliveries, rec.Attempt, want[0], want[1])
				}
			}
		})
	}
}

func TestCatering_ItemsAreInArrivalOrder(t *testing.T) {
	h := newHarness(t, defaultMode())
	keys := []string{"c", "a", "b", "a"} // the repeat of "a" must not move it
	for _, k := range keys {
		h.deliver(delivery{key: k})
	}
	var got []string
	for _, rec := range h.received().Items {
		got = append(got, rec.IdempotencyKey)
	}
	if strings.Join(got, ",") != "c,a,b" {
		t.Fatalf("items in order %v, want [c a b]", got)
	}
}

func TestCatering_KeepsBodyByteForByte(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"json with odd whitespace", "{ \"orderId\" :\t42 ,\n\n  \"items\":[ \"tea\" ,\"scone\"],\"note\":\"  \"}\r\n"},
		{"escapes and unicode", `{"name":"Zoë \u00e9 \"quoted\" \\ 🚂"}`},
		{"not json at all", "<order id=\"1\"/>"},
		{"empty", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, defaultMode())
			key := fmt.Sprintf("body-%d", i)
			h.deliver(delivery{key: key, body: tt.body})
			if got := h.record(key).Body; got != tt.body {
				t.Fatalf("recorded body %q, want exactly %q", got, tt.body)
			}
		})
	}
}

func TestCatering_FailureModes(t *testing.T) {
	base := defaultMode()
	with := func(f func(*stub.Mode)) stub.Mode { m := base; f(&m); return m }
	tests := []struct {
		name         string
		mode         stub.Mode
		wantStatus   int
		wantRecorded bool
	}{
		{"forced 503 fails", with(func(m *stub.Mode) { m.ForceStatus = 503 }), 503, false},
		{"forced 400 fails", with(func(m *stub.Mode) { m.ForceStatus = 400 }), 400, false},
		{"forced 202 is a success", with(func(m *stub.Mode) { m.ForceStatus = 202 }), 202, true},
		{"forced 204 is a success", with(func(m *stub.Mode) { m.ForceStatus = 204 }), 204, true},
		{"failure rate 1 always fails", with(func(m *stub.Mode) { m.FailureRate = 1; m.FailureStatus = 502 }), 502, false},
		{"failure rate 0 never fails", with(func(m *stub.Mode) { m.FailureRate = 0; m.FailureStatus = 502 }), 200, true},
		{"forced status wins over failure rate", with(func(m *stub.Mode) { m.ForceStatus = 429; m.FailureRate = 1 }), 429, false},
	}
	const n = 20
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mode)
			for i := range n {
				if status := h.deliver(delivery{key: fmt.Sprint(i), body: "{}"}); status != tt.wantStatus {
					t.Fatalf("request %d: status %d, want %d", i, status, tt.wantStatus)
				}
			}
			want := stub.Snapshot{Failed: n}
			if tt.wantRecorded {
				want = stub.Snapshot{Count: n, Deliveries: n}
			}
			got := h.received()
			if got.Count != want.Count || got.Deliveries != want.Deliveries || got.Failed != want.Failed {
				t.Fatalf("received count=%d deliveries=%d failed=%d, want %d, %d, %d",
					got.Count, got.Deliveries, got.Failed, want.Count, want.Deliveries, want.Failed)
			}
		})
	}
}

func TestCatering_DownDropsTheConnection(t *testing.T) {
	m := defaultMode()
	m.Down = true
	h := newHarness(t, m)

	status, body, err := h.post(context.Background(), h.fresh, delivery{key: "k", body: "{}"})
	if err == nil {
		t.Fatalf("POST in down mode got HTTP %d %q, want a transport error", status, body)
	}
	got := h.received()
	if got.Count != 0 || got.Deliveries != 0 || got.Failed != 1 {
		t.Fatalf("received = %+v, want nothing recorded and one failure", got)
	}
	// Only /catering is down: tests still need to read and reset the stub.
	if status, _ := h.do(http.MethodGet, "/healthz", ""); status != http.StatusOK {
		t.Fatalf("GET /healthz in down mode = %d, want 200", status)
	}
}

func TestCatering_LatencyDelaysTheAnswer(t *testing.T) {
	m := defaultMode()
	m.Latency = 30 * time.Millisecond
	h := newHarness(t, m)

	start := time.Now()
	if status := h.deliver(delivery{key: "slow"}); status != http.StatusOK {
		t.Fatalf("status %d, want 200", status)
	}
	if took := time.Since(start); took < m.Latency {
		t.Fatalf("answer after %v, want at least %v", took, m.Latency)
	}
	if got := h.received(); got.Count != 1 {
		t.Fatalf("received count %d, want 1", got.Count)
	}
}

func TestCatering_ClientGivingUpDuringLatencyIsAFailure(t *testing.T) {
	m := defaultMode()
	m.Latency = time.Minute
	h := newHarness(t, m)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := h.post(ctx, h.fresh, delivery{key: "impatient"}); err == nil {
		t.Fatal("POST returned before the client's deadline, want a timeout")
	}
	// The handler notices the hang-up on its own schedule: poll for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.received()
		if got.Failed == 1 && got.Count == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("received = %+v, want one failure and nothing recorded", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCatering_RejectsOversizedBody(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		wantStatus int
	}{
		{"exactly the limit", stub.MaxBodyBytes, http.StatusOK},
		{"one byte over", stub.MaxBodyBytes + 1, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, defaultMode())
			status, _, err := h.post(context.Background(), h.fresh, delivery{key: "big", body: strings.Repeat("x", tt.size)})
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d", status, tt.wantStatus)
			}
			got := h.received()
			wantFailed := 0
			if tt.wantStatus != http.StatusOK {
				wantFailed = 1
			}
			if got.Failed != wantFailed || got.Count != 1-wantFailed {
				t.Fatalf("received count=%d failed=%d, want %d and %d", got.Count, got.Failed, 1-wantFailed, wantFailed)
			}
		})
	}
}

func TestReceived_ByKey(t *testing.T) {
	h := newHarness(t, defaultMode())
	h.deliver(delivery{key: "present", attempt: 1, body: `{"a":1}`})

	if rec := h.record("present"); rec.IdempotencyKey != "present" || rec.Body != `{"a":1}` {
		t.Fatalf("record = %+v", rec)
	}
	status, body := h.do(http.MethodGet, "/received?key=absent", "")
	if status != http.StatusNotFound || !strings.Contains(string(body), "absent") {
		t.Fatalf("GET /received?key=absent = %d %s, want 404 naming the key", status, body)
	}
}

func TestReceived_DeleteClearsEverything(t *testing.T) {
	m := defaultMode()
	h := newHarness(t, m)
	h.deliver(delivery{key: "a"})
	h.setMode(`{"forceStatus":500}`)
	h.deliver(delivery{key: "b"})
	h.setMode(`{"forceStatus":0}`)
	if got := h.received(); got.Count != 1 || got.Failed != 1 {
		t.Fatalf("before delete: %+v, want one record and one failure", got)
	}

	if status, body := h.do(http.MethodDelete, "/received", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE /received = %d %s, want 204", status, body)
	}
	_, raw := h.do(http.MethodGet, "/received", "")
	if got := strings.TrimSpace(string(raw)); got != `{"count":0,"deliveries":0,"failed":0,"items":[]}` {
		t.Fatalf("after delete GET /received = %s", got)
	}
}

func TestAdminMode_ChangesTakeEffect(t *testing.T) {
	h := newHarness(t, defaultMode())
	if got := h.mode(); got != (modeView{FailureStatus: 500, Latency: "0s"}) {
		t.Fatalf("initial mode %+v", got)
	}

	// Each step changes the mode, then checks what a delivery gets. A
	// status of 0 means "a transport error, no HTTP answer".
	steps := []struct {
		patch      string
		wantMode   modeView
		wantStatus int
	}{
		{`{"forceStatus":503}`, modeView{ForceStatus: 503, FailureStatus: 500, Latency: "0s"}, 503},
		{`{"down":true}`, modeView{Down: true, ForceStatus: 503, FailureStatus: 500, Latency: "0s"}, 0},
		{`{"down":false,"forceStatus":0}`, modeView{FailureStatus: 500, Latency: "0s"}, 200},
		{`{"failureRate":1,"failureStatus":502}`, modeView{FailureRate: 1, FailureStatus: 502, Latency: "0s"}, 502},
		{`{"failureRate":0,"latency":"20ms"}`, modeView{FailureStatus: 502, Latency: "20ms"}, 200},
		{`{}`, modeView{FailureStatus: 502, Latency: "20ms"}, 200},
	}
	for i, step := range steps {
		if got := h.setMode(step.patch); got != step.wantMode {
			t.Fatalf("step %d: PUT %s answered %+v, want %+v", i, step.patch, got, step.wantMode)
		}
		if got := h.mode(); got != step.wantMode {
			t.Fatalf("step %d: GET after PUT %s = %+v, want %+v", i, step.patch, got, step.wantMode)
		}
		status, _, err := h.post(context.Background(), h.fresh, delivery{key: fmt.Sprint("step-", i)})
		switch {
		case step.wantStatus == 0 && err == nil:
			t.Fatalf("step %d: got HTTP %d, want a dropped connection", i, status)
		case step.wantStatus != 0 && err != nil:
			t.Fatalf("step %d: transport error %v, want HTTP %d", i, err, step.wantStatus)
		case status != step.wantStatus:
			t.Fatalf("step %d: status %d, want %d", i, status, step.wantStatus)
		}
	}
	if got := h.received(); got.Count != 3 || got.Failed != 3 {
		t.Fatalf("received count=%d failed=%d, want 3 and 3", got.Count, got.Failed)
	}
}

func TestAdminMode_RejectsInvalidPatches(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"failure rate above one", `{"failureRate":1.5}`},
		{"forced status out of range", `{"forceStatus":42}`},
		{"failure status informational", `{"failureStatus":101}`},
		{"latency not a duration", `{"latency":"soon"}`},
		{"latency negative", `{"latency":"-1s"}`},
		{"wrong type", `{"down":"yes"}`},
		{"unknown field", `{"downn":true}`},
		{"not json", `down`},
		{"valid field next to an invalid one", `{"down":true,"failureRate":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, defaultMode())
			before := h.mode()
			status, body := h.do(http.MethodPut, "/admin/mode", tt.body)
			if status != http.StatusBadRequest {
				t.Fatalf("PUT /admin/mode %s = %d %s, want 400", tt.body, status, body)
			}
			if after := h.mode(); after != before {
				t.Fatalf("mode changed by a rejected patch: %+v -> %+v", before, after)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	h := newHarness(t, defaultMode())
	status, body := h.do(http.MethodGet, "/healthz", "")
	if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Fatalf("GET /healthz = %d %s", status, body)
	}
}

func TestServer_LogsOneLinePerRequestUnlessQuiet(t *testing.T) {
	tests := []struct {
		quiet     bool
		wantLines int
	}{
		{quiet: false, wantLines: 3},
		{quiet: true, wantLines: 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("quiet=%v", tt.quiet), func(t *testing.T) {
			var logs syncBuffer
			h := newHarnessWith(t, stub.Options{Mode: defaultMode(), Quiet: tt.quiet, Logger: jsonLogger(&logs)})
			h.deliver(delivery{key: "logged", attempt: 1})
			h.deliver(delivery{key: "logged", attempt: 2})
			h.do(http.MethodGet, "/received", "")

			// The line is written before the answer is flushed, so it is
			// there once the client has its response.
			got := strings.Count(logs.String(), `"msg":"request"`)
			if got != tt.wantLines {
				t.Fatalf("%d request lines, want %d:\n%s", got, tt.wantLines, logs.String())
			}
			if !tt.quiet && !strings.Contains(logs.String(), `"idempotencyKey":"logged"`) {
				t.Fatalf("request lines lack the idempotency key:\n%s", logs.String())
			}
		})
	}
}

func TestCatering_ConcurrentDeliveriesAreAllCounted(t *testing.T) {
	h := newHarness(t, defaultMode())
	const (
		workers   = 16
		perWorker = 50
		keys      = 100
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Sprintf("k%d", (w*perWorker+i)%keys)
				status, _, err := h.post(context.Background(), h.client, delivery{key: key, attempt: w + 1, body: "{}"})
				if err != nil || status != http.StatusOK {
					errs <- fmt.Errorf("worker %d request %d: status %d err %v", w, i, status, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	got := h.received()
	if got.Count != keys || got.Deliveries != workers*perWorker {
		t.Fatalf("count=%d deliveries=%d, want %d and %d", got.Count, got.Deliveries, keys, workers*perWorker)
	}
	sum := 0
	for _, rec := range got.Items {
		sum += rec.Deliveries
	}
	if sum != workers*perWorker {
		t.Fatalf("per-key deliveries add up to %d, want %d", sum, workers*perWorker)
	}
}

func TestRecorder_IsSafeForConcurrentUse(t *testing.T) {
	r := stub.NewRecorder()
	const goroutines, each = 32, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r.Record(stub.Delivery{Key: fmt.Sprint(i), Attempt: g, Body: []byte("{}"), At: time.Now()})
				if i%10 == 0 {
					r.Fail()
					_ = r.Snapshot() // readers race with writers under -race
				}
			}
		})
	}
	wg.Wait()
	got := r.Snapshot()
	if got.Count != each || got.Deliveries != goroutines*each || got.Failed != goroutines*each/10 {
		t.Fatalf("count=%d deliveries=%d failed=%d, want %d, %d, %d",
			got.Count, got.Deliveries, got.Failed, each, goroutines*each, goroutines*each/10)
	}
	for _, rec := range got.Items {
		if rec.Deliveries != goroutines {
			t.Fatalf("key %s has %d deliveries, want %d", rec.IdempotencyKey, rec.Deliveries, goroutines)
		}
	}
}

func TestNew_RejectsInvalidMode(t *testing.T) {
	m := defaultMode()
	m.FailureRate = 1.5
	if _, err := stub.New(stub.Options{Mode: m}); err == nil {
		t.Fatal("New accepted failure rate 1.5")
	}
}
