package seen_test

import (
	"os"
	"path/filepath"
	"testing"

	seen "seen-worker/clients/go"
)

// The embedded put script must be the repository's cache/scripts/download_pending_put.lua,
// byte for byte (`make sync-clients` copies it; tests/conformance checks every copy too).
func TestEmbeddedScriptIsTheRepositorysCopy(t *testing.T) {
	path := filepath.Join("..", "..", "cache", "scripts", "download_pending_put.lua")
	want, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is missing: %v", path, err)
		}
		t.Skipf("%s not found (run inside the repository): %v", path, err)
	}
	source, sha := seen.PendingPutScript()
	if source != string(want) {
		t.Fatalf("scripts/download_pending_put.lua differs from %s: run `make sync-clients`", path)
	}
	if len(sha) != 40 {
		t.Fatalf("sha %q", sha)
	}
}
