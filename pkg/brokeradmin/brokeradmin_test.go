package brokeradmin_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokeradmin"
	"github.com/railco/relay/pkg/brokertest"
)

func TestNew_WhereTheAPIIs(t *testing.T) {
	tests := []struct{ amqp, mgmt, want string }{
		{"amqp://u:secret@rabbit:5672/", "", "http://rabbit:15672"},
		{"amqps://u:secret@rabbit.example/prod", "", "https://rabbit.example:15671"},
		{"amqp://u:secret@[::1]:5672/", "", "http://[::1]:15672"},
		{"amqp://u:secret@rabbit/", "https://admin:other@mgmt.example:443/rabbitmq/", "https://mgmt.example:443/rabbitmq"},
		{"amqp://u:secret@rabbit-1:5672/,amqp://u:secret@rabbit-2:5672/", "", "http://rabbit-1:15672,http://rabbit-2:15672"},
	}
	for _, tt := range tests {
		c, err := brokeradmin.New(tt.amqp, tt.mgmt)
		if err != nil {
			t.Errorf("New(%q, %q): %v", tt.amqp, tt.mgmt, err)
			continue
		}
		if got := c.String(); got != tt.want || strings.Contains(got, "secret") || strings.Contains(got, "other") {
			t.Errorf("New(%q, %q) = %q, want %q (no credentials)", tt.amqp, tt.mgmt, got, tt.want)
		}
	}
	if _, err := brokeradmin.New("amqp://u:p@h/", brokeradmin.Off); !errors.Is(err, brokeradmin.ErrOff) {
		t.Errorf("off: %v, want ErrOff", err)
	}
	for _, bad := range []string{"rabbit:15672", "ftp://x", "http://"} {
		if _, err := brokeradmin.New("amqp://u:p@h/", bad); err == nil {
			t.Errorf("management URL %q accepted", bad)
		}
	}
	if _, err := brokeradmin.New("amqp://u:secret@h:notaport/", ""); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad AMQP URL: %v (want an error without the password)", err)
	}
}

// In a cluster, a node whose API does not answer hands the call to the next.
func TestCluster_ANodeDownGoesToTheNext(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	_ = dead.Close() // refuses connections from now on
	c, err := brokeradmin.New(brokertest.URL(), deadURL+","+brokertest.Admin(t).String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 { // the second call starts at the node that answered
		var q struct{ Name string }
		if err := c.GetQueue(ctx, "no-such-queue-"+brokertest.Prefix(t), &q); !errors.Is(err, brokeradmin.ErrNotFound) {
			t.Fatalf("GetQueue = %v, want the live node's 404", err)
		}
	}
}

func TestPolicy_PutGetDelete(t *testing.T) {
	c := brokertest.Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := brokertest.Prefix(t)
	want := brokeradmin.Policy{Pattern: "^" + name + "$", ApplyTo: "queues", Priority: 7, Definition: map[string]any{"max-length": 3.0}}
	if err := c.PutPolicy(ctx, name, want); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetPolicy(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pattern != want.Pattern || got.ApplyTo != want.ApplyTo || got.Priority != want.Priority || got.Definition["max-length"] != 3.0 {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if err := c.DeletePolicy(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPolicy(ctx, name); !errors.Is(err, brokeradmin.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
	if err := c.DeletePolicy(ctx, name); err != nil {
		t.Errorf("deleting what is gone: %v, want nil", err)
	}
}

func TestErrors_SayWhyWithoutThePassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	c, err := brokeradmin.New("amqp://guest:secret@127.0.0.1:5672/", "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.PutPolicy(ctx, "x", brokeradmin.Policy{Pattern: "^x$", ApplyTo: "queues"})
	if err == nil || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable: %v; want the address and no password", err)
	}

	api := brokertest.Admin(t).String() // the test broker's API, which answers
	wrong, err := brokeradmin.New("amqp://nobody:secret@127.0.0.1/", api)
	if err != nil {
		t.Fatal(err)
	}
	err = wrong.PutPolicy(ctx, "x", brokeradmin.Policy{Pattern: "^x$", ApplyTo: "queues"})
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad credentials: %v; want a 401 without the password", err)
	}
}

func TestUser_PutConnectDelete(t *testing.T) {
	c := brokertest.Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := brokertest.Prefix(t)
	if err := c.PutUser(ctx, name, "pw-"+name, "policymaker"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteUser(context.Background(), name) })
	u, err := brokeradmin.New("amqp://"+name+":pw-"+name+"@127.0.0.1/", c.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.GetPolicy(ctx, "none"); !errors.Is(err, brokeradmin.ErrNotFound) {
		t.Errorf("the new user's request: %v, want a 404 (authenticated)", err)
	}
	if err := c.DeleteUser(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteUser(ctx, name); err != nil {
		t.Errorf("deleting what is gone: %v", err)
	}
}
