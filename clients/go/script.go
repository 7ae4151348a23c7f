package seen

import (
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
)

// The coalescing put script: a byte-for-byte copy of cache/scripts/download_pending_put.lua
// (`make sync-clients` refreshes it; tests fail when the copies differ).
//
//go:embed scripts/download_pending_put.lua
var pendingPutScript string

var pendingPutSHA = func() string {
	sum := sha1.Sum([]byte(pendingPutScript))
	return hex.EncodeToString(sum[:])
}()

// PendingPutScript is the Lua source of the coalescing put and its SHA-1 (for SCRIPT LOAD).
func PendingPutScript() (source, sha string) { return pendingPutScript, pendingPutSHA }
