package httpapi

import (
	"errors"
	"fmt"
	"net/http"

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
	outcomeRouting    = "no_route"   // 404, 405
	outcomeInternal   = "internal_error"
	outcomeReady      = "ready"
	outcomeNotReady   = "not_ready"
	outcomeHealthy    = "ok"
	outcomeScraped    = "scraped" // GET /metrics
)

// Error messages that do not come from the error itself: a client learns
// nothing from broker internals, and must not see an internal error's text.
const (
	messageNotStored      = "registration not stored: the message broker is unavailable, retry later"
	messageQueueFull      = "registration not stored: the queue is full (relay is behind on delivery), retry later"
	messageInternal       = "internal error"
	messageInvalidPayload = "invalid registration"
)

// classify maps an error to its response. It is the only place that decides
// an error's HTTP status.
func classify(err error) (status int, body errorBody, outcome string) {
	var (
		syntaxErr     *registration.SyntaxError
		validationErr *registration.ValidationError
		tooLarge      *bodyTooLargeError
		readErr       *bodyReadError
		keyErr        *idempotencyKeyError
		notStored     *notStoredError
		httpErr       *echo.HTTPError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return http.StatusBadRequest, errorBody{Error: syntaxErr.Error()}, outcomeMalformed
	case errors.As(err, &validationErr):
		return http.StatusUnprocessableEntity, errorBody{Error: messageInvalidPayload, Fields: validationErr.Fields}, outcomeInvalid
	case errors.Is(err, errUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, errorBody{Error: err.Error()}, outcomeMediaType
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, errorBody{Error: tooLarge.Error()}, outcomeTooLarge
	case errors.As(err, &readErr):
		return http.StatusBadRequest, errorBody{Error: "could not read the request body"}, outcomeUnreadable
	case errors.As(err, &keyErr):
		return http.StatusBadRequest, errorBody{Error: keyErr.Error()}, outcomeBadKey
	case errors.As(err, &notStored) && errors.Is(err, broker.ErrNacked):
		// A nack is the broker refusing to store it, which for relay's
		// queues means in practice that the main queue is at its length
		// limit (overflow reject-publish): back-pressure, not an outage.
		return http.StatusServiceUnavailable, errorBody{Error: messageQueueFull}, outcomeQueueFull
	case errors.As(err, &notStored):
		return http.StatusServiceUnavailable, errorBody{Error: messageNotStored}, outcomeNotStored
	case errors.As(err, &httpErr):
		msg, ok := httpErr.Message.(string)
		if !ok {
			msg = http.StatusText(httpErr.Code)
		}
		outcome := outcomeRouting
		if httpErr.Code >= 500 {
			outcome = outcomeInternal
		}
		return httpErr.Code, errorBody{Error: msg}, outcome
	default:
		return http.StatusInternalServerError, errorBody{Error: messageInternal}, outcomeInternal
	}
}

// handleError is echo's HTTPErrorHandler: it answers every failed request.
func (s *Server) handleError(err error, c echo.Context) {
	info := infoOf(c)
	info.err = err
	if c.Response().Committed {
		return
	}
	status, body, outcome := classify(err)
	info.outcome = outcome
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", s.retryAfter)
	}
	if err := c.JSON(status, body); err != nil {
		s.log.Debug("write error response", "err", err)
	}
}
