package stub

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// Context keys through which handlers add to the request log line.
const (
	logKeyAttr     = "stub.key"
	logOutcomeAttr = "stub.outcome"
)

// requestLogger logs one line per request. It is installed only when the
// stub is not quiet, so benchmarks pay nothing for it.
func requestLogger(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				// Let the error handler write the answer now so the line
				// shows the status the client actually got.
				c.Error(err)
			}
			req, res := c.Request(), c.Response()
			attrs := []slog.Attr{
				slog.String("method", req.Method),
				slog.String("path", req.URL.Path),
				slog.Duration("duration", time.Since(start)),
			}
			if res.Committed {
				attrs = append(attrs, slog.Int("status", res.Status))
			}
			if k, ok := c.Get(logKeyAttr).(string); ok {
				attrs = append(attrs, slog.String("idempotencyKey", k))
			} else if k := req.Header.Get("Idempotency-Key"); k != "" {
				attrs = append(attrs, slog.String("idempotencyKey", k))
			}
			if a := req.Header.Get("X-Delivery-Attempt"); a != "" {
				attrs = append(attrs, slog.String("attempt", a))
			}
			if o, ok := c.Get(logOutcomeAttr).(string); ok {
				attrs = append(attrs, slog.String("outcome", o))
			}
			log.LogAttrs(req.Context(), slog.LevelInfo, "request", attrs...)
			return nil
		}
	}
}
