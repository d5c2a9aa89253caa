package sink_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/bench/internal/sink"
)

func post(t *testing.T, url, key string, attempt int) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"passengerId":"`+key+`"}`))
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("X-Delivery-Attempt", strconv.Itoa(attempt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestSink_FailsAboutTheFractionOfFirstAttemptsOnly(t *testing.T) {
	s, err := sink.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Reset(sink.Mode{FailFirst: 0.2})
	failed := 0
	for i := range 1000 {
		key := "k-" + strconv.Itoa(i)
		if post(t, s.URL(), key, 1) == http.StatusInternalServerError {
			failed++
			if code := post(t, s.URL(), key, 2); code != http.StatusOK {
				t.Fatalf("second attempt of %s answered %d", key, code)
			}
		}
	}
	if failed < 150 || failed > 250 {
		t.Fatalf("%d of 1000 first attempts failed, want about 200", failed)
	}
	if err := s.WaitDelivered(context.Background(), 1000, time.Second); err != nil {
		t.Fatal(err)
	}
	c := s.Counts()
	if c.Delivered != 1000 || c.Failed != failed || c.Duplicates != 0 || c.Corrupt != 0 {
		t.Fatalf("counts %+v", c)
	}
}

func TestSink_CountsDuplicatesAndCorruptBodies(t *testing.T) {
	s, err := sink.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	post(t, s.URL(), "a", 1)
	post(t, s.URL(), "a", 2)
	req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(`{"passengerId":"other"}`))
	req.Header.Set("Idempotency-Key", "b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := s.Counts(); c.Delivered != 2 || c.Duplicates != 1 || c.Corrupt != 1 {
		t.Fatalf("counts %+v", c)
	}
	if err := s.WaitDelivered(context.Background(), 3, 50*time.Millisecond); err == nil {
		t.Fatal("WaitDelivered must time out when deliveries are missing")
	}
}
