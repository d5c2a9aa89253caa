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
// when the service failed it (with the error), and at debug for probes,
// which would otherwise drown the rest. It hands a handler's error to the
// HTTPErrorHandler itself so that the line has the final status.
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
		attrs := []slog.Attr{
			slog.String("method", req.Method),
			slog.String("path", req.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("outcome", info.outcome),
		}
		if info.id != "" {
			attrs = append(attrs, slog.String("id", info.id))
		}
		if level == slog.LevelWarn && info.err != nil {
			attrs = append(attrs, slog.Any("err", info.err))
		}
		s.log.LogAttrs(req.Context(), level, "request", attrs...)
		return nil
	}
}
