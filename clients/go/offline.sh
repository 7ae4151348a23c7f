#!/usr/bin/env bash
# Run a go command on the Go client and its redigo adapter with no module proxy, against
# Debian's redigo (golang-github-gomodule-redigo-dev): a workspace file outside the modules
# (.offline/go.work, not committed) uses both modules and replaces redigo by a copy of
# Debian's source whose go.mod lists no test-only requirement (redigo's own go.mod names
# testify, which GOPROXY=off cannot look up). The committed go.mod files stay what a user
# with a module proxy gets.
#   clients/go/offline.sh go vet ./... ./redigoconn/...
#   clients/go/offline.sh go test ./redigoconn/...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${REDIGO_SRC:-/usr/share/gocode/src/github.com/gomodule/redigo}
work="$here/.offline"
if [ ! -f "$src/redis/redis.go" ]; then
  echo "offline.sh: redigo not found at $src (apt-get install golang-github-gomodule-redigo-dev)" >&2
  exit 3
fi
rm -rf "$work"
mkdir -p "$work/redigo/redis"
cp "$src"/redis/*.go "$work/redigo/redis/"
rm -f "$work"/redigo/redis/*_test.go
printf 'module github.com/gomodule/redigo\n\ngo 1.17\n' >"$work/redigo/go.mod"
cat >"$work/go.work" <<WORK
go 1.19

use (
	$here
	$here/redigoconn
)

replace github.com/gomodule/redigo v1.8.3 => $work/redigo
WORK
cd "$here"
GOWORK="$work/go.work" GOPROXY=off GOFLAGS=-mod=readonly GOTOOLCHAIN=local exec "$@"
