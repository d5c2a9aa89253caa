package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/railco/relay/services/ingress/internal/httpapi"
	"github.com/railco/relay/services/ingress/internal/openapitest"
)

func TestOpenAPI_DocumentIsValidOpenAPI31(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	for _, problem := range openapitest.Validate(t) {
		t.Error(problem)
	}
	// What the specification allows but clients need.
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s has no responses", method, path)
			}
		}
	}
}

// The request body's example is the seed's registration.
func TestOpenAPI_ExampleIsTheSeed(t *testing.T) {
	var doc struct {
		Components struct {
			Examples struct {
				Seed struct {
					Value any `json:"value"`
				} `json:"Seed"`
			} `json:"examples"`
		} `json:"components"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var seed any
	if err := json.Unmarshal(seedBody(t), &seed); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.Components.Examples.Seed.Value, seed) {
		t.Errorf("components.examples.Seed is %v, want testdata/registration.json: %v", doc.Components.Examples.Seed.Value, seed)
	}
}

func TestOpenAPI_ServedToAnyone(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []httpapi.Option
	}{
		{"open", nil},
		{"with API keys", []httpapi.Option{httpapi.WithAPIKeys(testKeys(t))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, logs, _ := newGuardedServer(t, &fakePublisher{}, tt.opts...) // not even connected
			res := serve(t, srv, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
			if res.status != http.StatusOK || res.header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET /openapi.json: %d, Content-Type %q; want 200 application/json", res.status, res.header.Get("Content-Type"))
			}
			if !bytes.Equal([]byte(res.raw), httpapi.OpenAPI()) {
				t.Error("GET /openapi.json is not the embedded document")
			}
			if lines := logs.lines(t); len(lines) != 1 || lines[0]["outcome"] != "openapi" {
				t.Errorf("log %v, want one line with outcome openapi", lines)
			}
		})
	}
}

// sharedSpec checks the answers of every test that goes through serve or post, so
// that an answer the document lacks fails the test that produced it, not
// only TestOpenAPI_ServerAndDocumentAgree.
var sharedSpec = sync.OnceValues(openapitest.Load)

// conform checks res, the answer to req, against the OpenAPI document.
func conform(t testing.TB, req *http.Request, res *http.Response) {
	t.Helper()
	c, err := sharedSpec()
	if err != nil {
		t.Fatal(err)
	}
	c.Check(t, req, res)
}
