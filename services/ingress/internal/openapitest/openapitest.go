// Package openapitest checks the ingress's HTTP answers against its OpenAPI
// document (httpapi.OpenAPI), for tests.
//
// A Checker validates each answer with libopenapi-validator: its status must
// be documented for the request's operation, its Content-Type must be one
// the document gives for that status, its body must match the schema, and
// the headers the document marks required must be there and match theirs. A
// request that names no operation (an unknown path, another method) must get
// one of the document's x-relay-unrouted-responses, checked the same way.
// The Checker records every (method, path, status) it saw, so that a test can
// compare them with every one the document lists.
package openapitest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"

	"github.com/railco/relay/services/ingress/internal/httpapi"
)

// Unrouted is the Path of a Key for a request that names no operation.
const Unrouted = "(unrouted)"

// unroutedExtension names the document's answers to requests that name no
// operation.
const unroutedExtension = "x-relay-unrouted-responses"

// unroutedPath is where the unrouted answers sit in the Checker's second
// document, as the responses of GET.
const unroutedPath = "/unrouted"

// Key is one documented or observed answer: an operation's method and path
// and a status. A request that names no operation has Method "" and Path
// Unrouted.
type Key struct {
	Method string
	Path   string
	Status int
}

func (k Key) String() string {
	if k.Path == Unrouted {
		return fmt.Sprintf("%s %d", Unrouted, k.Status)
	}
	return fmt.Sprintf("%s %s %d", k.Method, k.Path, k.Status)
}

// Checker checks answers against the document and remembers what it saw. It
// is safe for concurrent use.
type Checker struct {
	model    *v3.Document
	routed   validator.Validator
	unrouted validator.Validator
	// hasBody tells, for every documented answer, whether the document
	// declares a body for it.
	hasBody map[Key]bool

	mu   sync.Mutex // serialises the validators, guards seen
	seen map[Key]int
}

// New loads the document; it fails the test when the document does not
// build (a $ref that does not resolve, a malformed schema).
func New(t testing.TB) *Checker {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Load is New for callers without a test at hand.
func Load() (*Checker, error) {
	doc := httpapi.OpenAPI()
	model, routed, err := load(doc)
	if err != nil {
		return nil, err
	}
	other, err := unroutedDocument(doc)
	if err != nil {
		return nil, err
	}
	otherModel, unrouted, err := load(other)
	if err != nil {
		return nil, err
	}
	c := &Checker{model: model, routed: routed, unrouted: unrouted, hasBody: map[Key]bool{}, seen: map[Key]int{}}
	add := func(method, path string, responses *v3.Responses) error {
		if responses.Default != nil {
			return fmt.Errorf("OpenAPI document: %s %s has a default response: list every status instead", method, path)
		}
		for code, r := range responses.Codes.FromOldest() {
			n, err := strconv.Atoi(code)
			if err != nil || n < 100 || n > 599 {
				// Not a range (4XX) either: every status listed must be
				// produced by some request.
				return fmt.Errorf("OpenAPI document: %s %s: response %q: want a status code", method, path, code)
			}
			c.hasBody[Key{method, path, n}] = orderedmap.Len(r.Content) > 0
		}
		return nil
	}
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			if err := add(strings.ToUpper(method), path, op.Responses); err != nil {
				return nil, err
			}
		}
	}
	item, _ := otherModel.Paths.PathItems.Get(unroutedPath)
	if err := add("", Unrouted, item.Get.Responses); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the document itself and returns what is wrong: against
// the OpenAPI specification's JSON Schema for its version (3.1), which
// takes every Schema Object for any object; then each Schema Object against
// the JSON Schema 2020-12 meta-schema, with its $refs resolved and its
// patterns compiled; and every example beside a schema against it.
func Validate(t testing.TB) []string {
	t.Helper()
	doc := httpapi.OpenAPI()
	_, v, err := load(doc)
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	if ok, errs := v.ValidateDocument(); !ok {
		problems = describe(errs)
	}
	root, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	const url = "urn:relay:ingress:openapi.json"
	compiler := jsonschema.NewCompiler()
	compiler.DefaultDraft(jsonschema.Draft2020)
	if err := compiler.AddResource(url, root); err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	for _, site := range schemaSites(root, root, "") {
		sch, err := compiler.Compile(url + "#" + site.ptr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("  schema %s: %v", site.ptr, err))
			continue
		}
		for _, ex := range slices.Sorted(maps.Keys(site.examples)) {
			if err := sch.Validate(site.examples[ex]); err != nil {
				problems = append(problems, fmt.Sprintf("  example %s does not match its schema: %v", ex, err))
			}
		}
	}
	return problems
}

// schemaSite is a Schema Object in the document and the examples that
// must match it.
type schemaSite struct {
	ptr      string         // JSON pointer
	examples map[string]any // JSON pointer → value
}

// schemaSites returns every Schema Object in the OpenAPI document v (at
// ptr): the value of each member "schema" (of a media type, a parameter or
// a header), with the example or examples beside it, and those of
// components.schemas. Those hold the rest of the document's schemas.
func schemaSites(root, v any, ptr string) []schemaSite {
	var out []schemaSite
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["schema"]; ok {
			site := schemaSite{ptr: ptr + "/schema", examples: map[string]any{}}
			if ex, ok := v["example"]; ok {
				site.examples[ptr+"/example"] = ex
			}
			examples, _ := v["examples"].(map[string]any)
			for name, ex := range examples {
				at := ptr + "/examples/" + escape(name)
				obj, _ := ex.(map[string]any)
				if ref, ok := obj["$ref"].(string); ok {
					at = strings.TrimPrefix(ref, "#")
					obj, _ = lookup(root, at).(map[string]any)
				}
				if value, ok := obj["value"]; ok {
					site.examples[at+"/value"] = value
				}
			}
			out = append(out, site)
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := ptr + "/" + escape(k)
			switch {
			case k == "schema":
			case ptr == "/components" && k == "schemas":
				for _, name := range slices.Sorted(maps.Keys(v[k].(map[string]any))) {
					out = append(out, schemaSite{ptr: p + "/" + escape(name)})
				}
			default:
				out = append(out, schemaSites(root, v[k], p)...)
			}
		}
	case []any:
		for i, e := range v {
			out = append(out, schemaSites(root, e, fmt.Sprintf("%s/%d", ptr, i))...)
		}
	}
	return out
}

// lookup returns the value at the JSON pointer ptr in v, nil if none.
func lookup(v any, ptr string) any {
	if ptr == "" {
		return v
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
	}
	return v
}

// escape makes s a JSON pointer's reference token (RFC 6901).
func escape(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

// Documented returns every (method, path, status) the document lists,
// unrouted answers included, sorted.
func (c *Checker) Documented() []Key { return sorted(slices.Collect(maps.Keys(c.hasBody))) }

// Seen returns every (method, path, status) Check was given, sorted.
func (c *Checker) Seen() []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sorted(slices.Collect(maps.Keys(c.seen)))
}

// Check validates res, the answer to req, against the document and records
// it; it reports what does not match as errors of t. It reads res.Body and
// leaves an unread copy in its place.
func (c *Checker) Check(t testing.TB, req *http.Request, res *http.Response) {
	t.Helper()
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", req.Method, req.URL.Path, err)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))

	path := c.template(req.URL.Path)
	key := Key{req.Method, path, res.StatusCode}
	v := c.routed
	vreq := req
	if !c.isOperation(req.Method, path) {
		key = Key{"", Unrouted, res.StatusCode}
		v = c.unrouted
		vreq = req.Clone(req.Context())
		vreq.Method = http.MethodGet
		vreq.URL.Path = unroutedPath
	}
	vres := *res
	vres.Body = io.NopCloser(bytes.NewReader(body))
	vres.Request = vreq

	c.mu.Lock()
	c.seen[key]++
	ok, errs := v.ValidateHttpResponse(vreq, &vres)
	c.mu.Unlock()
	if !ok {
		t.Errorf("%s %s → %d does not match the OpenAPI document (body %q):\n%s",
			req.Method, req.URL.Path, res.StatusCode, body, strings.Join(describe(errs), "\n"))
	}
	// The validator looks at bodies only where the document declares one.
	if hasBody, documented := c.hasBody[key]; documented && !hasBody && len(body) > 0 {
		t.Errorf("%s %s → %d has a body (%q), where the document declares none", req.Method, req.URL.Path, res.StatusCode, body)
	}
}

// CheckRequest validates req, whose body is body, against the document: its
// operation's parameters, security and request body schema.
func (c *Checker) CheckRequest(t testing.TB, req *http.Request, body []byte) {
	t.Helper()
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	c.mu.Lock()
	ok, errs := c.routed.ValidateHttpRequestSync(r)
	c.mu.Unlock()
	if !ok {
		t.Errorf("request %s %s (body %q) does not match the OpenAPI document:\n%s",
			req.Method, req.URL.Path, body, strings.Join(describe(errs), "\n"))
	}
}

// template returns the document's path that path matches: path itself, or a
// templated one ("/catering/registrations/{id}") whose other segments are
// equal; path when none matches.
func (c *Checker) template(path string) string {
	if _, ok := c.model.Paths.PathItems.Get(path); ok {
		return path
	}
	segs := strings.Split(path, "/")
	for p := c.model.Paths.PathItems.First(); p != nil; p = p.Next() {
		tpl := strings.Split(p.Key(), "/")
		if len(tpl) != len(segs) || !strings.Contains(p.Key(), "{") {
			continue
		}
		match := true
		for i, s := range tpl {
			if !(strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && segs[i] != "") && s != segs[i] {
				match = false
				break
			}
		}
		if match {
			return p.Key()
		}
	}
	return path
}

// isOperation reports whether the document has an operation for method on
// path, one of its paths (see template).
func (c *Checker) isOperation(method, path string) bool {
	item, ok := c.model.Paths.PathItems.Get(path)
	if !ok {
		return false
	}
	_, ok = item.GetOperations().Get(strings.ToLower(method))
	return ok
}

// load builds doc's model and a validator for it.
func load(doc []byte) (*v3.Document, validator.Validator, error) {
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	m, err := d.BuildV3Model()
	if err != nil {
		return nil, nil, fmt.Errorf("OpenAPI document: build the model: %w", err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("OpenAPI document: make a validator: %w", errors.Join(errs...))
	}
	return &m.Model, v, nil
}

// unroutedDocument is doc with its unrouted answers as the only operation,
// GET /unrouted, so that the validator checks them like any other.
func unroutedDocument(doc []byte) ([]byte, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	ext, _ := d[unroutedExtension].(map[string]any)
	responses, _ := ext["responses"].(map[string]any)
	if len(responses) == 0 {
		return nil, fmt.Errorf("OpenAPI document: %s lists no responses", unroutedExtension)
	}
	delete(d, unroutedExtension)
	d["paths"] = map[string]any{unroutedPath: map[string]any{"get": map[string]any{"responses": responses}}}
	return json.Marshal(d)
}

func sorted(keys []Key) []Key {
	slices.SortFunc(keys, func(a, b Key) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Method, b.Method), cmp.Compare(a.Status, b.Status))
	})
	return keys
}

// describe turns the validator's errors into lines.
func describe(errs []*liberrors.ValidationError) []string {
	var out []string
	for _, e := range errs {
		line := e.Message
		if e.Reason != "" {
			line += ": " + e.Reason
		}
		for _, s := range e.SchemaValidationErrors {
			line += fmt.Sprintf("\n    %s (at %q, keyword %s, line %d)", s.Reason, s.FieldPath, s.KeywordLocation, s.Line)
		}
		out = append(out, "  "+line)
	}
	return out
}
