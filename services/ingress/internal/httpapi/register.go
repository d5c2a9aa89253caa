package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/events"

	"github.com/railco/relay/services/ingress/internal/registration"
)

// pathRegister is the API's one route besides the probes.
const pathRegister = "/catering/register"

// maxKeyLen bounds Idempotency-Key: it becomes the AMQP message-id, a
// short string of at most 255 bytes, and shows in logs.
const maxKeyLen = 200

// accepted is the 202 response.
type accepted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// register stores one registration. It checks the media type, the size, the
// Idempotency-Key and the content, in that order; nothing is published unless
// all pass, and 202 is sent only after the broker's confirm.
func (s *Server) register(c echo.Context) error {
	req := c.Request()
	if !isJSON(req.Header.Get(echo.HeaderContentType)) {
		return errUnsupportedMediaType
	}
	body, err := readBody(req, s.maxBody)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(req.Header)
	if err != nil {
		return err
	}
	info := infoOf(c)
	info.id = key
	if err := registration.Validate(body); err != nil {
		return err
	}
	id := key
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return err // crypto/rand failed: nothing the client can do, so a 500
		}
		id = u.String()
		info.id = id
	}

	// Not cancelled when the client hangs up: the wait is bounded anyway, and
	// finishing it lets the log say whether the message was stored.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), s.publishTimeout)
	defer cancel()
	start := time.Now()
	if err := s.pub.Publish(ctx, s.exchange, s.routingKey, envelope.New(id, body, start)); err != nil {
		return &notStoredError{err: err}
	}
	s.obs.Confirmed(time.Since(start))
	s.emitAccepted(id, start, info.client)
	info.outcome = outcomeAccepted
	return c.JSONBlob(http.StatusAccepted, acceptedJSON(id))
}

// acceptedJSON is the 202's body, byte for byte what encoding/json makes of
// accepted{ID: id, Status: "accepted"} (and c.JSON sends, newline included),
// without its reflection and encoder allocation on every request.
func acceptedJSON(id string) []byte {
	b := make([]byte, 0, len(`{"id":"","status":"accepted"}`)+len(id)+1)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	return append(b, `,"status":"accepted"}`+"\n"...)
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters too). Ids are printable ASCII (an
// Idempotency-Key) or a UUID; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// isJSON reports whether a Content-Type value declares JSON: application/json
// in any case, with parameters allowed as long as a charset is UTF-8 (RFC 8259
// allows no other).
func isJSON(contentType string) bool {
	mediaType, params, hasParams := strings.Cut(contentType, ";")
	if !strings.EqualFold(strings.TrimSpace(mediaType), "application/json") {
		return false
	}
	if !hasParams || strings.TrimSpace(params) == "" {
		return true
	}
	_, parsed, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	charset, ok := parsed["charset"]
	return !ok || strings.EqualFold(charset, "utf-8")
}

// readBody reads the body, refusing more than limit bytes: up front when the
// client declared a Content-Length, and while reading when it did not
// (chunked), so a large body is never held in memory.
func readBody(req *http.Request, limit int) ([]byte, error) {
	if req.ContentLength > int64(limit) {
		return nil, &bodyTooLargeError{limit: limit}
	}
	size := 512
	if req.ContentLength >= 0 {
		size = int(req.ContentLength) + 1 // +1: room to see EOF without growing
	}
	body, err := readAll(io.LimitReader(req.Body, int64(limit)+1), size)
	if err != nil {
		return nil, &bodyReadError{err: err}
	}
	if len(body) > limit {
		return nil, &bodyTooLargeError{limit: limit}
	}
	return body, nil
}

// readAll is io.ReadAll starting from a buffer of size bytes.
func readAll(r io.Reader, size int) ([]byte, error) {
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
	}
}

// idempotencyKey returns the Idempotency-Key header, "" when there is none.
// A client that retries with the same key gets the same message id, so the
// backend can drop duplicates.
func idempotencyKey(h http.Header) (string, error) {
	values, ok := h["Idempotency-Key"]
	if !ok {
		return "", nil
	}
	if len(values) != 1 {
		return "", &idempotencyKeyError{reason: "must be sent once"}
	}
	key := values[0]
	switch {
	case strings.TrimSpace(key) == "":
		return "", &idempotencyKeyError{reason: "must not be empty"}
	case len(key) > maxKeyLen:
		return "", &idempotencyKeyError{reason: "must be at most 200 characters"}
	}
	for i := range len(key) {
		if key[i] < 0x20 || key[i] > 0x7e {
			return "", &idempotencyKeyError{reason: "must contain only printable ASCII characters"}
		}
	}
	return key, nil
}

// emitAccepted publishes the registration's accepted event without making
// the 202 wait for it. The registration itself is durable once confirmed,
// and it carries its accepted time (x-relay-accepted-at) to every event the
// forwarder publishes; so an accepted event lost with a crashing ingress
// costs the history only the client's name, never the status. Waiting for
// its confirm before answering would add a second confirm round trip to
// every registration; publishing it before the registration's confirm could
// record a registration the broker then refused (queue full).
func (s *Server) emitAccepted(id string, at time.Time, client string) {
	if !s.events.On() {
		return
	}
	ev := events.Event{Type: events.TypeAccepted, ID: id, At: at, AcceptedAt: events.TimePtr(at), Client: client}
	s.events.Post(ev, func(err error) {
		if err != nil {
			s.log.Warn("accepted event not stored (the status stays right; the history lacks the client's name)", "id", id, "err", err)
		}
	})
}

// pathRegistration is where one registration's status is read.
const pathRegistration = "/catering/registrations/:id"

// Lookup reads the registration index. Implementations are safe for
// concurrent use.
type Lookup interface {
	// Registration returns what the event stream says of id; ok is false
	// when it says nothing.
	Registration(id string) (r events.Registration, ok bool, err error)
}

// WithLookup serves GET /catering/registrations/{id} from l, with the same
// authentication as the POST.
func WithLookup(l Lookup) Option { return func(s *Server) { s.lookup = l } }

// registrationStatus answers GET /catering/registrations/{id}: the status
// and history of one registration, 404 when the index knows nothing of it.
func (s *Server) registrationStatus(c echo.Context) error {
	id := c.Param("id")
	info := infoOf(c)
	info.id = id
	r, ok, err := s.lookup.Registration(id)
	if err != nil {
		return &lookupError{err: err}
	}
	if !ok {
		return &unknownRegistrationError{id: id}
	}
	info.outcome = outcomeFound
	return c.JSON(http.StatusOK, r)
}
