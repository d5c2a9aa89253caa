package deployments

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The compose demo keys file must be one the ingress accepts (name:key, keys
// of 16 to 512 characters, as services/ingress/internal/apikey wants), or
// `make up` stops at start.
func TestComposeDemoKeys_AcceptedByTheIngress(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "deployments", "compose", "demo-api-keys", "api-keys"))
	if err != nil {
		t.Fatal(err)
	}
	clients := 0
	for n, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, key, ok := strings.Cut(line, ":")
		if !ok || name == "" || len(key) < 16 || len(key) > 512 {
			t.Errorf("line %d: want name:key with a key of 16 to 512 characters", n+1)
		}
		clients++
	}
	if clients == 0 {
		t.Error("no client in the demo keys file")
	}
}
