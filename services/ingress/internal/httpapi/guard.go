package httpapi

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Who may call a route, and how often, is middleware that hangs off the
// route (New passes it to e.POST), constructed with the key set and the
// limiter it uses: no global state, so another route, or a group of them,
// can get keys and limits of its own.
//
// Order matters: logRequests (global) → requireAPIKey or anonymous → limitRate
// → the handler. The limiter needs the client's name, and an unauthenticated
// request must not use up a client's tokens.

// Authenticator tells which client an API key belongs to. Implementations
// are safe for concurrent use; *apikey.File is the real one.
type Authenticator interface {
	// Lookup returns the name of the client whose API key key is. It takes
	// the same time whichever client matched, or none.
	Lookup(key string) (client string, ok bool)
}

// RateLimiter hands out requests to clients keyed by K. Implementations are
// safe for concurrent use; *ratelimit.Limiter is the real one.
type RateLimiter[K comparable] interface {
	// Allow takes one request from key's allowance and reports true, or
	// reports false and how long until key may make one again.
	Allow(key K) (ok bool, retryIn time.Duration)
}

// anonymousClient names every client of an ingress without keys, in logs and
// metrics (apikey.Anonymous).
const anonymousClient = "anonymous"

// Reasons for a 401, as metric labels.
const (
	authMissing   = "missing"   // no Authorization header, or another scheme than Bearer
	authMalformed = "malformed" // Authorization: Bearer without a usable token, or sent twice
	authInvalid   = "invalid"   // a well-formed token that is no client's key
)

// authErrors are the 401s' errors, made once: a flood of unauthenticated
// requests costs no allocation for them.
var authErrors = map[string]error{
	authMissing:   &authError{reason: authMissing},
	authMalformed: &authError{reason: authMalformed},
	authInvalid:   &authError{reason: authInvalid},
}

// requireAPIKey lets a request through only with a known client's key in
// "Authorization: Bearer <key>", and names the client in the request's log
// line; otherwise it answers 401 and the handler never runs.
func requireAPIKey(keys Authenticator, obs Observer) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, reason := bearerToken(c.Request().Header)
			if reason == "" {
				client, ok := keys.Lookup(token)
				if ok {
					infoOf(c).client = client
					return next(c)
				}
				reason = authInvalid
			}
			obs.AuthFailed(reason)
			return authErrors[reason]
		}
	}
}

// anonymous names the client of an ingress without keys.
func anonymous(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		infoOf(c).client = anonymousClient
		return next(c)
	}
}

// bearerToken returns the token of "Authorization: Bearer <token>" (RFC 6750
// §2.1; the scheme in any case), or why there is none.
func bearerToken(h http.Header) (token, reason string) {
	values := h["Authorization"]
	switch len(values) {
	case 0:
		return "", authMissing
	case 1:
	default:
		return "", authMalformed
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", authMissing // another scheme: no credentials relay understands
	}
	token = strings.Trim(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", authMalformed
	}
	return token, ""
}

// limitRate answers 429 with Retry-After, before the handler runs, to a
// client over its allowance; key tells the limiter's key of a request.
func limitRate[K comparable](l RateLimiter[K], key func(echo.Context) K, obs Observer) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ok, retryIn := l.Allow(key(c))
			if !ok {
				obs.RateLimited(infoOf(c).client)
				return &rateLimitedError{retryIn: retryIn}
			}
			return next(c)
		}
	}
}

// clientKey keys a request by its client's name (requireAPIKey or anonymous
// set it).
func clientKey(c echo.Context) string { return infoOf(c).client }

// addrKey keys a request by the address it came from: an IPv4 address, or an
// IPv6 address's /64 (one host's usual share, which it can otherwise cycle
// through). This is the TCP peer: behind a proxy, every client is the proxy.
// An address that does not parse keys as the zero Addr, one bucket for all
// of them.
func addrKey(c echo.Context) netip.Addr {
	ap, err := netip.ParseAddrPort(c.Request().RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return addr
}
