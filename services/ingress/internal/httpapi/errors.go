package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/railco/relay/pkg/broker"

	"github.com/railco/relay/services/ingress/internal/registration"
)

// The handler's failures. Each has its status in handleError and nowhere else.

// errUnsupportedMediaType: the request does not declare a JSON body.
var errUnsupportedMediaType = errors.New("request Content-Type must be application/json")

// bodyTooLargeError: the body is over MAX_BODY_BYTES.
type bodyTooLargeError struct{ limit int }

func (e *bodyTooLargeError) Error() string {
	return fmt.Sprintf("request body is larger than %d bytes", e.limit)
}

// bodyReadError: the body could not be read (the client went away, bad chunking).
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// idempotencyKeyError: the Idempotency-Key header is unusable as a message id.
type idempotencyKeyError struct{ reason string }

func (e *idempotencyKeyError) Error() string { return "Idempotency-Key " + e.reason }

// notStoredError: the broker did not confirm the message, so it may not be
// stored and the client must retry.
type notStoredError struct{ err error }

func (e *notStoredError) Error() string { return "publish: " + e.err.Error() }
func (e *notStoredError) Unwrap() error { return e.err }

// authError: the request carries no known client's API key (reason:
// authMissing, authMalformed or authInvalid).
type authError struct{ reason string }

func (e *authError) Error() string { return "API key " + e.reason }

// rateLimitedError: the client is over its rate limit until retryIn has
// passed.
type rateLimitedError struct{ retryIn time.Duration }

func (e *rateLimitedError) Error() string {
	return "rate limit exceeded, retry in " + e.retryIn.String()
}

// unknownRegistrationError: no event of this id is in the index (never
// accepted, or older than the event stream's retention).
type unknownRegistrationError struct{ id string }

func (e *unknownRegistrationError) Error() string { return "no registration " + e.id + " known" }

// lookupError: the index could not be read.
type lookupError struct{ err error }

func (e *lookupError) Error() string { return "look up registration: " + e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

// errorBody is every error response.
type errorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Outcomes, as logged per request.
const (
	outcomeAccepted   = "accepted"
	outcomeMalformed  = "malformed_json"
	outcomeInvalid    = "invalid"
	outcomeMediaType  = "unsupported_media_type"
	outcomeTooLarge   = "too_large"
	outcomeUnreadable = "unreadable_body"
	outcomeBadKey     = "bad_idempotency_key"
	outcomeNotStored  = "not_stored"
	outcomeQueueFull  = "queue_full" // the broker refused it: the main queue is at its limit
	outcomeNoKey      = "missing_api_key"
	outcomeBadAuth    = "malformed_authorization"
	outcomeWrongKey   = "invalid_api_key"
	outcomeLimited    = "rate_limited"
	outcomeRouting    = "no_route" // 404, 405
	outcomeInternal   = "internal_error"
	outcomeReady      = "ready"
	outcomeNotReady   = "not_ready"
	outcomeHealthy    = "ok"
	outcomeDocument   = "openapi" // GET /openapi.json
	outcomeFound      = "found"   // GET /catering/registrations/{id}
	outcomeUnknown    = "unknown_registration"
)

// Error messages that do not come from the error itself: a client learns
// nothing from broker internals, and must not see an internal error's text.
const (
	messageNotStored      = "registration not stored: the message broker is unavailable, retry later"
	messageQueueFull      = "registration not stored: the queue is full (relay is behind on delivery), retry later"
	messageInternal       = "internal error"
	messageInvalidPayload = "invalid registration"
	messageNoKey          = "missing API key: send Authorization: Bearer <key>"
	messageBadAuth        = "malformed Authorization header: send Authorization: Bearer <key>"
	messageWrongKey       = "invalid API key"
	messageLimited        = "too many requests from this client, retry later"
)

// The WWW-Authenticate challenges of a 401 (RFC 6750 §3): no error code
// when the request had no bearer token at all, else what was wrong with it.
const (
	challengeMissing   = `Bearer realm="relay"`
	challengeMalformed = `Bearer realm="relay", error="invalid_request"`
	challengeInvalid   = `Bearer realm="relay", error="invalid_token"`
)

// errorResponse is how a failed request is answered.
type errorResponse struct {
	status     int
	body       errorBody
	outcome    string
	retryAfter string // Retry-After, seconds; "" for none
	challenge  string // WWW-Authenticate; "" for none
}

// classify maps an error to its response. It is the only place that decides
// an error's HTTP status.
func (s *Server) classify(err error) errorResponse {
	var (
		syntaxErr     *registration.SyntaxError
		validationErr *registration.ValidationError
		tooLarge      *bodyTooLargeError
		readErr       *bodyReadError
		keyErr        *idempotencyKeyError
		notStored     *notStoredError
		authErr       *authError
		limited       *rateLimitedError
		unknown       *unknownRegistrationError
		lookupErr     *lookupError
		httpErr       *echo.HTTPError
	)
	switch {
	case errors.As(err, &authErr):
		switch authErr.reason {
		case authMissing:
			return errorResponse{status: http.StatusUnauthorized, body: errorBody{Error: messageNoKey}, outcome: outcomeNoKey, challenge: challengeMissing}
		case authMalformed:
			// RFC 6750 suggests 400 for invalid_request; a 401 keeps every
			// "no usable key" answer alike for clients, with the challenge.
			return errorResponse{status: http.StatusUnauthorized, body: errorBody{Error: messageBadAuth}, outcome: outcomeBadAuth, challenge: challengeMalformed}
		default:
			return errorResponse{status: http.StatusUnauthorized, body: errorBody{Error: messageWrongKey}, outcome: outcomeWrongKey, challenge: challengeInvalid}
		}
	case errors.As(err, &limited):
		return errorResponse{status: http.StatusTooManyRequests, body: errorBody{Error: messageLimited}, outcome: outcomeLimited,
			retryAfter: retryAfterSeconds(limited.retryIn)}
	case errors.As(err, &unknown):
		return errorResponse{status: http.StatusNotFound, body: errorBody{Error: "registration not found (unknown id, or older than the event retention)"}, outcome: outcomeUnknown}
	case errors.As(err, &lookupErr):
		return errorResponse{status: http.StatusServiceUnavailable, body: errorBody{Error: "registration index unavailable, retry later"}, outcome: outcomeInternal, retryAfter: s.retryAfter}
	case errors.As(err, &syntaxErr):
		return errorResponse{status: http.StatusBadRequest, body: errorBody{Error: syntaxErr.Error()}, outcome: outcomeMalformed}
	case errors.As(err, &validationErr):
		return errorResponse{status: http.StatusUnprocessableEntity, body: errorBody{Error: messageInvalidPayload, Fields: validationErr.Fields}, outcome: outcomeInvalid}
	case errors.Is(err, errUnsupportedMediaType):
		return errorResponse{status: http.StatusUnsupportedMediaType, body: errorBody{Error: err.Error()}, outcome: outcomeMediaType}
	case errors.As(err, &tooLarge):
		return errorResponse{status: http.StatusRequestEntityTooLarge, body: errorBody{Error: tooLarge.Error()}, outcome: outcomeTooLarge}
	case errors.As(err, &readErr):
		return errorResponse{status: http.StatusBadRequest, body: errorBody{Error: "could not read the request body"}, outcome: outcomeUnreadable}
	case errors.As(err, &keyErr):
		return errorResponse{status: http.StatusBadRequest, body: errorBody{Error: keyErr.Error()}, outcome: outcomeBadKey}
	case errors.As(err, &notStored) && errors.Is(err, broker.ErrNacked):
		// A nack is the broker refusing to store it, which for relay's
		// queues means in practice that the main queue is at its length
		// limit (overflow reject-publish): back-pressure, not an outage.
		return errorResponse{status: http.StatusServiceUnavailable, body: errorBody{Error: messageQueueFull}, outcome: outcomeQueueFull, retryAfter: s.retryAfter}
	case errors.As(err, &notStored):
		return errorResponse{status: http.StatusServiceUnavailable, body: errorBody{Error: messageNotStored}, outcome: outcomeNotStored, retryAfter: s.retryAfter}
	case errors.As(err, &httpErr):
		msg, ok := httpErr.Message.(string)
		if !ok {
			msg = http.StatusText(httpErr.Code)
		}
		r := errorResponse{status: httpErr.Code, body: errorBody{Error: msg}, outcome: outcomeRouting}
		if httpErr.Code >= 500 {
			r.outcome = outcomeInternal
		}
		if httpErr.Code == http.StatusServiceUnavailable {
			r.retryAfter = s.retryAfter
		}
		return r
	default:
		return errorResponse{status: http.StatusInternalServerError, body: errorBody{Error: messageInternal}, outcome: outcomeInternal}
	}
}

// retryAfterSeconds is d as a Retry-After value: whole seconds, rounded up,
// at least 1 (0 would invite an immediate retry that fails again).
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// handleError is echo's HTTPErrorHandler: it answers every failed request.
func (s *Server) handleError(err error, c echo.Context) {
	info := infoOf(c)
	info.err = err
	if c.Response().Committed {
		return
	}
	r := s.classify(err)
	info.outcome = r.outcome
	h := c.Response().Header()
	if r.retryAfter != "" {
		h.Set("Retry-After", r.retryAfter)
	}
	if r.challenge != "" {
		h.Set(echo.HeaderWWWAuthenticate, r.challenge)
	}
	if err := c.JSON(r.status, r.body); err != nil {
		s.log.Debug("write error response", "err", err)
	}
}
