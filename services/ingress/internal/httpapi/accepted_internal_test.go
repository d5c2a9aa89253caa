package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The hand-made 202 body is what encoding/json (c.JSON) made of it, for ids
// of every kind, escaping included.
func TestAcceptedJSON_IsWhatEncodingJSONMakes(t *testing.T) {
	for _, id := range []string{"", "0193c1a2-7b4e-7c3d-9a1b-2c3d4e5f6a7b", "241241d", `a"quote`, `back\\slash`,
		"<script>&", "tab\there", "é-unicode", "\x7f", "~!@#$%^*()_+{}|:?"} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(accepted{ID: id, Status: "accepted"}); err != nil {
			t.Fatal(err)
		}
		if got := acceptedJSON(id); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("id %q: %s, want %s", id, got, want.Bytes())
		}
	}
}
