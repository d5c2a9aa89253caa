package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/railco/relay/pkg/config"
)

func TestSecret_NeverShown(t *testing.T) {
	s := config.Secret("hunter2-hunter2-hunter2")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "token", s, "in", struct{ T config.Secret }{s})
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "token", s)
	js, _ := json.Marshal(map[string]any{"t": s, "s": struct{ T config.Secret }{s}})
	out := fmt.Sprintf("%v %s %#v %+v %q", s, s, s, struct{ T config.Secret }{s}, s) + logs.String() + string(js)
	if strings.Contains(out, "hunter2") {
		t.Errorf("the secret shows: %s", out)
	}
	if !strings.Contains(out, "[redacted]") || string(s) != "hunter2-hunter2-hunter2" {
		t.Errorf("want [redacted] in %s", out)
	}
	if config.Secret("").String() != "" {
		t.Error("an unset secret is not empty")
	}
}
