// Package seen is the Go producer of seen-worker jobs: it enqueues any job (with an id of
// your choice, deferred, de-duplicated by id), progress updates one by one or in batches,
// publishes coalesced progress through the same Lua script the Python producer uses, and
// reads a job's status and result, on both queue layouts (ARQ's keys, or hashtag shards).
//
// It speaks to Redis, Valkey or Dragonfly through Conn, a two-method interface any client
// library can offer: the redigoconn module adapts redigo, README.md shows the go-redis v9
// adapter. The package itself imports the standard library only.
//
// Everything a call would write is checked before anything is sent: ids, payload fields and
// their ranges, sizes, trace context. A refused call returns a *ValidationError naming the
// field and sends no command. The contract is docs/wire-format.md of the repository; the
// conformance vectors in tests/conformance/vectors are shared with the Python and Node
// producers and run by this package's tests.
package seen
