package main

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/railco/relay/services/ingress/internal/httpapi"
)

// The API's description is on the public port, where clients are, for
// anyone (keys or not), and not on the admin port.
func TestRun_ServesItsOpenAPIDocumentOnThePublicPort(t *testing.T) {
	env, _, _ := keysEnv(t, "0")
	in := start(t, env)
	get := func(url string) (int, string, []byte) {
		t.Helper()
		res, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("Content-Type"), body
	}
	status, contentType, body := get(in.url + "/openapi.json")
	if status != http.StatusOK || contentType != "application/json" || !bytes.Equal(body, httpapi.OpenAPI()) {
		t.Errorf("public GET /openapi.json: %d %q, %d bytes; want 200 application/json, the document", status, contentType, len(body))
	}
	if status, _, _ := get(in.adminURL + "/openapi.json"); status != http.StatusNotFound {
		t.Errorf("admin GET /openapi.json: %d, want 404", status)
	}
}
