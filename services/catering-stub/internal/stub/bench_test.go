package stub_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/railco/relay/services/catering-stub/internal/stub"
)

// BenchmarkServer_Catering measures the quiet hot path without the network,
// so that a regression in the stub is not mistaken for one in the relay.
func BenchmarkServer_Catering(b *testing.B) {
	srv, err := stub.New(stub.Options{Mode: defaultMode(), Quiet: true})
	if err != nil {
		b.Fatal(err)
	}
	const body = `{"orderId":1,"items":["tea","scone"]}`
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/catering", strings.NewReader(body))
			req.Header.Set("Idempotency-Key", fmt.Sprint(n.Add(1)))
			req.Header.Set("X-Delivery-Attempt", "1")
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
