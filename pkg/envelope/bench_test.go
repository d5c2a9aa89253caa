package envelope_test

import (
	"testing"
	"time"

	"github.com/railco/relay/pkg/envelope"
)

// benchBody is the size and shape of the seed registration.
var benchBody = []byte(`{"passengerId":"241241d","class":"first","train":"RLC-5051",` +
	`"departure":{"time":"2021-07-16 11:45","station":"King Cross"},` +
	`"arrival":{"time":"2021-07-16 16:40","station":"Edinburgh"},"duration":"4h 55m",` +
	`"food":[{"serving":"lunch","type":"Asian","comments":["Not too spicy"]},{"serving":"snacks","type":"Normal","comments":[]}]}`)

// BenchmarkNew measures what the ingress does per accepted registration to
// build the message it publishes.
func BenchmarkNew(b *testing.B) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		_ = envelope.New("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", benchBody, at)
	}
}

// BenchmarkRead measures what the forwarder does per delivery to learn the
// attempt count.
func BenchmarkRead(b *testing.B) {
	d := delivered(envelope.New("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", benchBody, time.Now()))
	b.ReportAllocs()
	for b.Loop() {
		_ = envelope.Read(d)
	}
}

// BenchmarkRetry measures building the message for a retry tier after a
// failed first attempt.
func BenchmarkRetry(b *testing.B) {
	d := delivered(envelope.New("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", benchBody, time.Now()))
	a := envelope.Attempt{Number: 1, At: time.Now(), Status: 500, Err: "backend answered 500 Internal Server Error"}
	b.ReportAllocs()
	for b.Loop() {
		_ = envelope.Retry(d, a)
	}
}
