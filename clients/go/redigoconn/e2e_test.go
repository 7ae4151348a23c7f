package redigoconn_test

// End to end against a real server and a real `seen-worker run` worker, through redigo.
// tests/conformance/test_go_client.py starts both and runs this with:
//   SEEN_TEST_REDIS_ADDR   host:port of the server (the worker uses db 0)
//   SEEN_TEST_QUEUE_LAYOUT "arq" or "sharded" (SEEN_TEST_QUEUE_SHARDS shards), as the worker
//   SEEN_TEST_SPARE_DB     an empty database no worker reads (refusals, exact put outcomes)
//   SEEN_TEST_PREFIX       prefix of every id this run uses
//   SEEN_TEST_TRACEPARENT  the trace the traced jobs carry (the worker's spans must join it)
// It then reads the download states this test leaves with the Python CacheManager.

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	seen "seen-worker/clients/go"
	"seen-worker/clients/go/redigoconn"
)

const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	waitFor     = 20 * time.Second
)

// traceparentOf is the trace of this run: pytest's (it reads the worker's spans of that trace),
// else a fixed one.
func traceparentOf() string {
	if given := os.Getenv("SEEN_TEST_TRACEPARENT"); given != "" {
		return given
	}
	return traceparent
}

type env struct {
	addr, prefix string
	layout       seen.Layout
	spareDB      int
}

func readEnv(t *testing.T) env {
	addr := os.Getenv("SEEN_TEST_REDIS_ADDR")
	if addr == "" {
		t.Skip("SEEN_TEST_REDIS_ADDR unset: tests/conformance/test_go_client.py runs this")
	}
	layout, err := seen.ARQLayout("")
	if os.Getenv("SEEN_TEST_QUEUE_LAYOUT") == "sharded" {
		shards, _ := strconv.Atoi(os.Getenv("SEEN_TEST_QUEUE_SHARDS"))
		layout, err = seen.ShardedLayout("", shards)
	}
	if err != nil {
		t.Fatal(err)
	}
	spare, err := strconv.Atoi(os.Getenv("SEEN_TEST_SPARE_DB"))
	if err != nil {
		t.Fatalf("SEEN_TEST_SPARE_DB: %v", err)
	}
	return env{addr: addr, prefix: os.Getenv("SEEN_TEST_PREFIX"), layout: layout, spareDB: spare}
}

func pool(addr string, db int) *redis.Pool {
	return &redis.Pool{
		MaxIdle: 4,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr, redis.DialDatabase(db),
				redis.DialConnectTimeout(2*time.Second), redis.DialReadTimeout(5*time.Second))
		},
	}
}

// counting passes every call on to a real connection and counts them.
type counting struct {
	seen.Conn
	calls atomic.Int64
}

func (c *counting) Do(ctx context.Context, cmd string, args ...string) (any, error) {
	c.calls.Add(1)
	return c.Conn.Do(ctx, cmd, args...)
}

func (c *counting) Tx(ctx context.Context, cmds [][]string) ([]any, error) {
	c.calls.Add(1)
	return c.Conn.Tx(ctx, cmds)
}

func dbsize(t *testing.T, conn seen.Conn) int64 {
	t.Helper()
	n, err := conn.Do(context.Background(), "DBSIZE")
	if err != nil {
		t.Fatal(err)
	}
	return n.(int64)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func update(job, user string, status seen.Status, seq int64) seen.Update {
	return seen.Update{JobID: job, UserID: user, Status: status, Seq: seq, BytesDone: seq * 100,
		BytesTotal: 1000, EmittedAtMs: seen.Ptr(time.Now().UnixMilli())}
}

// Every refused call sends nothing (the counting connection saw no call) and the store is
// untouched (DBSIZE of a database nobody else writes stays what it was).
func TestE2ERefusedBeforeAnythingIsWritten(t *testing.T) {
	e := readEnv(t)
	real := redigoconn.New(pool(e.addr, e.spareDB))
	before := dbsize(t, real)
	conn := &counting{Conn: real}
	client := seen.NewClient(conn, e.layout)
	publisher, err := seen.NewPublisher(conn, client, seen.DefaultDownloadSettings())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	good := update("dl-ok", "u1", seen.Downloading, 1)
	bad := map[string]seen.Update{}
	for name, change := range map[string]func(*seen.Update){
		"job_id with ':'":        func(u *seen.Update) { u.JobID = "dl:1" },
		"job_id with a newline":  func(u *seen.Update) { u.JobID = "dl-1\n" },
		"job_id of 129":          func(u *seen.Update) { u.JobID = strings.Repeat("d", 129) },
		"user_id with a space":   func(u *seen.Update) { u.UserID = "u 1" },
		"user_id non-ASCII":      func(u *seen.Update) { u.UserID = "ü" },
		"status unknown":         func(u *seen.Update) { u.Status = "done" },
		"seq negative":           func(u *seen.Update) { u.Seq = -1 },
		"seq 2^53":               func(u *seen.Update) { u.Seq = 1 << 53 },
		"bytes_total too large":  func(u *seen.Update) { u.BytesTotal = 1 << 60 },
		"emitted_at_ms negative": func(u *seen.Update) { u.EmittedAtMs = seen.Ptr(int64(-1)) },
		"error of 2001":          func(u *seen.Update) { u.Error = seen.Ptr(strings.Repeat("x", 2001)) },
		"error not UTF-8":        func(u *seen.Update) { u.Error = seen.Ptr("\xff") },
	} {
		u := good
		change(&u)
		bad[name] = u
	}
	var v *seen.ValidationError
	for name, u := range bad {
		if _, err := client.EnqueueUpdate(ctx, u, seen.EnqueueOptions{}); !errors.As(err, &v) {
			t.Errorf("EnqueueUpdate %s: %v", name, err)
		}
		if _, err := client.EnqueueBatch(ctx, []seen.Update{good, u}, seen.EnqueueOptions{}); !errors.As(err, &v) || v.Index != 1 {
			t.Errorf("EnqueueBatch %s: %v", name, err)
		}
		if _, err := publisher.Publish(ctx, u); !errors.As(err, &v) {
			t.Errorf("Publish %s: %v", name, err)
		}
	}
	oversize := make([]seen.Update, seen.MaxBatch+1)
	for i := range oversize {
		oversize[i] = update("dl-b"+strconv.Itoa(i), "u1", seen.Downloading, 1)
	}
	if _, err := client.EnqueueBatch(ctx, oversize, seen.EnqueueOptions{}); !errors.As(err, &v) {
		t.Errorf("a batch of %d: %v", len(oversize), err)
	}
	for name, call := range map[string]func() error{
		"job id with a brace": func() error {
			_, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{JobID: "a{b}"})
			return err
		},
		"job id with a trailing newline": func() error {
			_, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{JobID: "job-1\n"})
			return err
		},
		"empty function": func() error {
			_, err := client.Enqueue(ctx, "", nil, seen.EnqueueOptions{})
			return err
		},
		"negative defer": func() error {
			_, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{Defer: -time.Second})
			return err
		},
		"upper-case traceparent": func() error {
			trace := seen.TraceContext{Traceparent: strings.ToUpper(traceparent)}
			_, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{Trace: trace})
			return err
		},
		"all-zero trace id": func() error {
			trace := seen.TraceContext{Traceparent: "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"}
			_, err := client.EnqueueUpdate(ctx, good, seen.EnqueueOptions{Trace: trace})
			return err
		},
		"tracestate without traceparent": func() error {
			_, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{Trace: seen.TraceContext{Tracestate: "k=v"}})
			return err
		},
		"status of a bad id": func() error { _, err := client.Status(ctx, "a b"); return err },
		"result of a bad id": func() error { _, err := client.Result(ctx, "a*"); return err },
	} {
		if err := call(); !errors.As(err, &v) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := conn.calls.Load(); n != 0 {
		t.Errorf("refused calls sent %d commands", n)
	}
	if after := dbsize(t, real); after != before {
		t.Errorf("DBSIZE %d -> %d", before, after)
	}
}

// The put script's outcome codes, exactly, where no worker drains: duplicated and reordered
// updates are ignored, a newer one is coalesced, another user's is rejected, a drain that
// outlived its lease is rescheduled; every drain id handed out is enqueued.
func TestE2ECoalescedOutcomes(t *testing.T) {
	e := readEnv(t)
	conn := redigoconn.New(pool(e.addr, e.spareDB))
	client := seen.NewClient(conn, e.layout)
	settings := seen.DefaultDownloadSettings()
	publisher, err := seen.NewPublisher(conn, client, settings)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	dl := e.prefix + "-dl-exact"
	want := []struct {
		seq     int64
		user    string
		outcome seen.Outcome
	}{
		{3, "u1", seen.Scheduled}, {1, "u1", seen.Ignored}, {5, "u1", seen.Coalesced},
		{5, "u1", seen.Ignored}, {2, "u1", seen.Ignored}, {4, "u1", seen.Ignored},
		{6, "u2", seen.Rejected},
	}
	var scheduledAt time.Time
	for _, w := range want {
		got, err := publisher.Publish(ctx, update(dl, w.user, seen.Downloading, w.seq))
		if err != nil || got != w.outcome {
			t.Fatalf("seq %d by %s: %v (%v), want %v", w.seq, w.user, got, err, w.outcome)
		}
		if got == seen.Scheduled {
			scheduledAt = time.Now()
		}
	}
	keys := settings.Keys(dl, "u1")
	seq, err := redis.String(conn.Do(ctx, "HGET", keys.Pending, "seq"))
	if err != nil || seq != "5" {
		t.Fatalf("pending seq %q (%v), want 5", seq, err)
	}
	drainID, err := redis.String(conn.Do(ctx, "HGET", keys.Drain, "id"))
	if err != nil {
		t.Fatal(err)
	}
	if status, err := client.Status(ctx, drainID); err != nil || status != seen.StatusQueued {
		t.Fatalf("drain job %s: %v (%v), want queued", drainID, status, err)
	}
	// a lease of 1 ms: the next newer put replaces the scheduled drain with a new one
	short := settings
	short.PendingLease = time.Millisecond
	hurried, err := seen.NewPublisher(conn, client, short)
	if err != nil {
		t.Fatal(err)
	}
	for time.Since(scheduledAt) <= 5*time.Millisecond { // ends within 5 ms
		time.Sleep(time.Millisecond)
	}
	if got, err := hurried.Publish(ctx, update(dl, "u1", seen.Downloading, 7)); err != nil || got != seen.Rescheduled {
		t.Fatalf("a newer put after the lease: %v (%v), want rescheduled", got, err)
	}
	newID, err := redis.String(conn.Do(ctx, "HGET", keys.Drain, "id"))
	if err != nil || newID == drainID {
		t.Fatalf("the drain was not replaced: %q (%v)", newID, err)
	}
	if status, err := client.Status(ctx, newID); err != nil || status != seen.StatusQueued {
		t.Fatalf("replacement drain %s: %v (%v)", newID, status, err)
	}
	if publisher.Owed() != 0 || hurried.Owed() != 0 {
		t.Fatal("drain jobs left unenqueued")
	}
}

// Every operation against the worker: ping with a trace context and its result, a deferred
// job and de-duplication by id, update_progress, update_progress_batch, a failed job's
// result, and coalesced publishing with duplicated and reordered updates applied.
func TestE2EWithWorker(t *testing.T) {
	e := readEnv(t)
	conn := redigoconn.New(pool(e.addr, 0))
	client := seen.NewClient(conn, e.layout)
	ctx := ctxFor(t)
	p := e.prefix

	trace := seen.TraceContext{Traceparent: traceparentOf(), Tracestate: "congo=t61rcWkgMzE"}
	pingID, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{JobID: p + "-ping", Trace: trace})
	if err != nil {
		t.Fatal(err)
	}
	result, err := client.WaitResult(ctx, pingID, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !result.Success || string(result.Result) != `"pong"` || result.Function != "ping" ||
		result.JobID != pingID || result.Queue != e.layout.Name() {
		t.Fatalf("ping result %+v", result)
	}
	if status, err := client.Status(ctx, pingID); err != nil || status != seen.StatusComplete {
		t.Fatalf("ping status %v (%v)", status, err)
	}

	deferredID := p + "-deferred"
	if _, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{JobID: deferredID, Defer: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{JobID: deferredID}); !errors.Is(err, seen.ErrJobExists) {
		t.Fatalf("second enqueue of %s: %v, want ErrJobExists", deferredID, err)
	}
	if _, err := client.Enqueue(ctx, "ping", nil, seen.EnqueueOptions{JobID: pingID + "-none"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitResult(ctx, pingID+"-none", 20*time.Millisecond); err != nil {
		t.Fatal(err) // the worker ran a job enqueued after the deferred one ...
	}
	if status, err := client.Status(ctx, deferredID); err != nil || status != seen.StatusDeferred {
		t.Fatalf("deferred job: %v (%v)", status, err) // ... but not the deferred one
	}
	if status, err := client.Status(ctx, p+"-never"); err != nil || status != seen.StatusNotFound {
		t.Fatalf("unknown job: %v (%v)", status, err)
	}

	single := update(p+"-dl-single", "u1", seen.Downloading, 4)
	id, err := client.EnqueueUpdate(ctx, single, seen.EnqueueOptions{Trace: trace})
	if err != nil {
		t.Fatal(err)
	}
	expectResult(ctx, t, client, id, true, `"applied"`)

	batch := []seen.Update{
		update(p+"-dl-batch-1", "u1", seen.Downloading, 2),
		update(p+"-dl-batch-2", "u1", seen.Completed, 9),
	}
	id, err = client.EnqueueBatch(ctx, batch, seen.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectResult(ctx, t, client, id, true, `{"applied":2}`)

	// another user's update of that download fails its job; the result says why
	thief := update(p+"-dl-single", "u2", seen.Downloading, 5)
	id, err = client.EnqueueUpdate(ctx, thief, seen.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failed := expectResult(ctx, t, client, id, false, "")
	if kind, message := failed.Failure(); kind == "" || !strings.Contains(message, "another user") {
		t.Fatalf("failure %q %q", kind, message)
	}

	settings := seen.DefaultDownloadSettings()
	publisher, err := seen.NewPublisher(conn, client, settings)
	if err != nil {
		t.Fatal(err)
	}
	dl := p + "-dl-coalesced"
	seqs := []int64{3, 1, 5, 5, 2, 4}
	newer := []bool{true, false, true, false, false, false}
	for i, seq := range seqs {
		outcome, err := publisher.Publish(ctx, update(dl, "u1", seen.Downloading, seq))
		if err != nil {
			t.Fatal(err)
		}
		// a newer update is coalesced, or scheduled when the worker drained the shard meanwhile
		if newer[i] && outcome != seen.Scheduled && outcome != seen.Coalesced {
			t.Fatalf("seq %d: %v", seq, outcome)
		}
		if !newer[i] && outcome != seen.Ignored {
			t.Fatalf("seq %d (not newer): %v, want ignored", seq, outcome)
		}
	}
	final, err := publisher.Publish(ctx, update(dl, "u1", seen.Completed, 8))
	if err != nil || (final != seen.Scheduled && final != seen.Coalesced) {
		t.Fatalf("final update: %v (%v)", final, err)
	}
	progress := settings.Keys(dl, "u1").Progress
	for {
		values, err := redis.StringMap(conn.Do(ctx, "HGETALL", progress))
		if err != nil {
			t.Fatal(err)
		}
		if values["seq"] == "8" && values["status"] == "completed" && values["user"] == "u1" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never reached seq 8: %v", dl, values)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func expectResult(ctx context.Context, t *testing.T, client *seen.Client, id string, success bool, want string) *seen.JobResult {
	t.Helper()
	result, err := client.WaitResult(ctx, id, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if result.Success != success || want != "" && string(result.Result) != want {
		t.Fatalf("%s (%s): success %v result %s, want %v %s", id, result.Function, result.Success, result.Result, success, want)
	}
	return result
}
