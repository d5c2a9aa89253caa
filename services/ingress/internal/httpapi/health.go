package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Broker states shown by /readyz.
const (
	brokerConnected    = "connected"
	brokerDisconnected = "disconnected"
	brokerBlocked      = "blocked"
)

type readiness struct {
	Status string `json:"status"`
	Broker string `json:"broker"`
	Node   string `json:"node,omitempty"` // host:port of the broker node it is connected to
	Reason string `json:"reason,omitempty"`
}

// healthz answers while the process serves HTTP at all (liveness).
func (s *Server) healthz(c echo.Context) error {
	infoOf(c).outcome = outcomeHealthy
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only while a registration could be accepted now, so
// that a load balancer sends traffic elsewhere during outages and shutdown.
func (s *Server) readyz(c echo.Context) error {
	broker := brokerConnected
	if !s.pub.Ready() {
		broker = brokerDisconnected
		if s.pub.Blocked() {
			broker = brokerBlocked
		}
	}
	r := readiness{Status: "ready", Broker: broker}
	if s.node != nil {
		r.Node = s.node()
	}
	if s.draining.Load() {
		r.Reason = "shutting down"
	}
	info := infoOf(c)
	if broker != brokerConnected || r.Reason != "" {
		r.Status = "not ready"
		info.outcome = outcomeNotReady
		return c.JSON(http.StatusServiceUnavailable, r)
	}
	info.outcome = outcomeReady
	return c.JSON(http.StatusOK, r)
}
