package brokeradmin

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The management API's ports when the broker serves it over plain HTTP, and
// over TLS.
const (
	DefaultPort    = 15672
	DefaultTLSPort = 15671
)

// Off, given as the management URL, turns the management API off.
const Off = "off"

// ErrOff is returned by New for the management URL Off.
var ErrOff = errors.New("management API turned off")

// Client calls the management API for one virtual host. It is safe for
// concurrent use.
type Client struct {
	base        *url.URL // scheme://host:port[/prefix], no credentials
	user, pass  string
	vhost       string
	http        *http.Client
	description string // base URL, password masked
}

// New returns a Client for the broker of amqpURL. mgmtURL, when not empty,
// says where the management API is (e.g. "http://rabbitmq:15672"); its
// credentials, if any, are used instead of amqpURL's. When empty, it is
// http://<amqpURL's host>:15672 with amqpURL's credentials. The virtual host
// is always amqpURL's. mgmtURL "off" gives ErrOff.
func New(amqpURL, mgmtURL string) (*Client, error) {
	if mgmtURL == Off {
		return nil, ErrOff
	}
	uri, err := amqp.ParseURI(amqpURL)
	if err != nil {
		return nil, errors.New("invalid AMQP URL") // its text would quote the password
	}
	// A call or two per connection to the broker: no connection is kept
	// open between them.
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}
	c := &Client{user: uri.Username, pass: uri.Password, vhost: uri.Vhost, http: &http.Client{Timeout: 10 * time.Second, Transport: transport}}
	if mgmtURL == "" {
		// The credentials go with every call: over TLS when AMQP uses it.
		c.base = &url.URL{Scheme: "http", Host: net.JoinHostPort(uri.Host, fmt.Sprint(DefaultPort))}
		if uri.Scheme == "amqps" {
			c.base = &url.URL{Scheme: "https", Host: net.JoinHostPort(uri.Host, fmt.Sprint(DefaultTLSPort))}
		}
	} else {
		u, err := url.Parse(mgmtURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("management URL must be an http(s) URL")
		}
		if u.User != nil {
			c.user = u.User.Username()
			c.pass, _ = u.User.Password()
		}
		u.User = nil
		u.Path = strings.TrimSuffix(u.Path, "/")
		c.base = u
	}
	if c.vhost == "" {
		c.vhost = "/"
	}
	c.description = c.base.String()
	return c, nil
}

// UseTLS makes an https API trusted as cfg says (the broker's CA, a client
// certificate); nil keeps the system's CAs. Call it before any request.
func (c *Client) UseTLS(cfg *tls.Config) {
	c.http.Transport.(*http.Transport).TLSClientConfig = cfg.Clone() // a config of its own: an AMQP dial sets the AMQP host's name in its config
}

// String is the API's base URL, without credentials.
func (c *Client) String() string { return c.description }

// Policy is a RabbitMQ policy, as the management API takes it.
type Policy struct {
	Pattern    string         `json:"pattern"`  // regular expression on names
	ApplyTo    string         `json:"apply-to"` // "queues", "exchanges" or "all"
	Priority   int            `json:"priority"` // the highest matching policy wins
	Definition map[string]any `json:"definition"`
}

// PutPolicy creates or replaces the policy name in the virtual host.
func (c *Client) PutPolicy(ctx context.Context, name string, p Policy) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode policy %s: %w", name, err)
	}
	return c.do(ctx, http.MethodPut, c.policyPath(name), body, nil)
}

// GetPolicy returns the policy name, or an error wrapping ErrNotFound.
func (c *Client) GetPolicy(ctx context.Context, name string) (Policy, error) {
	var p Policy
	err := c.do(ctx, http.MethodGet, c.policyPath(name), nil, &p)
	return p, err
}

// DeletePolicy removes the policy name; one that does not exist is no error.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	err := c.do(ctx, http.MethodDelete, c.policyPath(name), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// GetQueue reads GET /api/queues/<vhost>/<name> into out (a struct with the
// fields wanted), or returns an error wrapping ErrNotFound.
func (c *Client) GetQueue(ctx context.Context, name string, out any) error {
	return c.do(ctx, http.MethodGet, "/api/queues/"+url.PathEscape(c.vhost)+"/"+url.PathEscape(name), nil, out)
}

// PutUser creates or updates a user with password and tags (e.g.
// "policymaker"), and gives it every permission in the virtual host: for
// tests and set-up scripts, which need a user of their own.
func (c *Client) PutUser(ctx context.Context, name, password, tags string) error {
	body, _ := json.Marshal(map[string]string{"password": password, "tags": tags})
	if err := c.do(ctx, http.MethodPut, "/api/users/"+url.PathEscape(name), body, nil); err != nil {
		return err
	}
	perms, _ := json.Marshal(map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
	return c.do(ctx, http.MethodPut, "/api/permissions/"+url.PathEscape(c.vhost)+"/"+url.PathEscape(name), perms, nil)
}

// DeleteUser removes a user; one that does not exist is no error.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	err := c.do(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(name), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// ErrNotFound is a 404 from the API.
var ErrNotFound = errors.New("not found")

func (c *Client) policyPath(name string) string {
	return "/api/policies/" + url.PathEscape(c.vhost) + "/" + url.PathEscape(name)
}

// do calls the API; out, if not nil, receives the JSON answer.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	u := *c.base
	u.RawPath = u.Path + path // keep %2F in the vhost escaped
	u.Path += unescape(path)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.user, c.pass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("management API at %s: %w", c.description, errors.Unwrap(err)) // *url.Error repeats the URL
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", method, path, ErrNotFound)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s %s: user %q refused (401)", method, path, c.user)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s %s: user %q may not do this (403; policies need the policymaker or administrator tag)", method, path, c.user)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func unescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}
