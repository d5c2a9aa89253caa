package load

import (
	"encoding/json"
	"testing"
)

func TestPayload_SetsPassengerIDAndKeepsTheRest(t *testing.T) {
	seed := []byte("{\n \"passengerId\": \"241241d\",\n \"class\": \"first\"\n}")
	p, err := NewPayload(seed)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ PassengerID, Class string }
	if err := json.Unmarshal(p.Body("run-7"), &got); err != nil {
		t.Fatal(err)
	}
	if got.PassengerID != "run-7" || got.Class != "first" {
		t.Fatalf("got %+v", got)
	}
	if _, err := NewPayload([]byte(`{"class":"first"}`)); err == nil {
		t.Fatal("a payload without passengerId must be refused")
	}
}

func TestAcceptedID(t *testing.T) {
	for _, tc := range []struct {
		body string
		id   string
		ok   bool
	}{
		{`{"id":"abc-1","status":"accepted"}`, "abc-1", true},
		{`{"status":"accepted","id":"x"}`, "x", true},
		{`{"id":"","status":"accepted"}`, "", false},
		{`{"error":"nope"}`, "", false},
	} {
		id, ok := acceptedID([]byte(tc.body))
		if id != tc.id || ok != tc.ok {
			t.Errorf("%s: got %q %v", tc.body, id, ok)
		}
	}
}
