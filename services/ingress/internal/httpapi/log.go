package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// requestInfo collects what the request log line reports.
type requestInfo struct {
	id      string
	client  string // the API key's client, "anonymous" without keys; "" before (or without) authentication
	outcome string
	err     error
}

const infoKey = "relay.request"

// infoOf returns the request's info; logRequests put it there.
func infoOf(c echo.Context) *requestInfo {
	if info, ok := c.Get(infoKey).(*requestInfo); ok {
		return info
	}
	return &requestInfo{} // a route without logRequests: record into the void
}

// logRequests logs one line per request once it is answered: at info, at warn
// when the service failed it (with the error), and at debug for probes and
// scrapes, which would otherwise drown the rest. It hands a handler's error
// to the HTTPErrorHandler itself so that the line has the final status, and
// tells the Observer.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		info := &requestInfo{}
		c.Set(infoKey, info)
		if err := next(c); err != nil {
			c.Error(err)
		}
		req := c.Request()
		status := c.Response().Status
		took := time.Since(start)
		s.obs.Answered(status, info.outcome)
		if info.client != "" {
			s.obs.ClientAnswered(info.client, status)
		}
		if req.Method == http.MethodPost && req.URL.Path == pathRegister {
			s.obs.Registration(took)
		}
		level := slog.LevelInfo
		switch {
		case req.URL.Path == "/healthz" || req.URL.Path == "/readyz":
			level = slog.LevelDebug // a 503 from /readyz is an answer, not a failure
		case status >= http.StatusInternalServerError:
			level = slog.LevelWarn
		}
		if !s.log.Enabled(context.Background(), level) {
			return nil
		}
		attrs := append(make([]slog.Attr, 0, 8), // room for all: one allocation
			slog.String("method", req.Method),
			slog.String("path", req.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", took),
			slog.String("outcome", info.outcome),
		)
		if info.id != "" {
			attrs = append(attrs, slog.String("id", info.id))
		}
		if info.client != "" {
			attrs = append(attrs, slog.String("client", info.client))
		}
		if level == slog.LevelWarn && info.err != nil {
			attrs = append(attrs, slog.Any("err", info.err))
		}
		s.log.LogAttrs(req.Context(), level, "request", attrs...)
		return nil
	}
}
