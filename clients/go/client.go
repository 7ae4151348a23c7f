package seen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// recordTTL is how long a job record lives (ARQ's expires_extra_ms: one day).
const recordTTL = 24 * time.Hour

// Client enqueues jobs on one queue and reads their status and results.
type Client struct {
	conn   Conn
	layout Layout
}

// NewClient is a client of the queue whose keys layout describes, on conn (the queue store:
// queue.addr, or the cache store when that is unset).
func NewClient(conn Conn, layout Layout) *Client {
	return &Client{conn: conn, layout: layout}
}

// Layout is the client's queue layout.
func (c *Client) Layout() Layout { return c.layout }

// EnqueueOptions are the optional parts of an enqueue.
type EnqueueOptions struct {
	// JobID is the job's id; "" for a fresh random one. While a job with this id exists,
	// another enqueue with it is refused with ErrJobExists (de-duplication by id).
	JobID string
	// Defer starts the job no earlier than this long from now.
	Defer time.Duration
	// At starts the job no earlier than this time (instead of Defer, when not zero).
	At time.Time
	// Trace is the W3C trace context to carry to the worker (record field "tc").
	Trace TraceContext
}

// Enqueue writes one job: its record (SET NX, one day expiry) and its id in the queue
// (ZADD NX, scored by the time it may start), in one MULTI/EXEC. args must marshal to JSON.
// It returns the job id, or ErrJobExists when a job with that id exists.
func (c *Client) Enqueue(ctx context.Context, function string, args []any, opts EnqueueOptions,
) (string, error) {
	jobID := opts.JobID
	if jobID == "" {
		jobID = randomHex(16)
	}
	if err := CheckJobID("job_id", jobID); err != nil {
		return "", err
	}
	if opts.Defer < 0 {
		return "", invalid("defer", "must not be negative, got %s", opts.Defer)
	}
	now := time.Now().UnixMilli()
	score := now + opts.Defer.Milliseconds()
	if !opts.At.IsZero() {
		score = opts.At.UnixMilli()
	}
	if score <= 0 {
		return "", invalid("at", "must be after the epoch")
	}
	record, err := Record(function, args, now, opts.Trace)
	if err != nil {
		return "", err
	}
	keys := c.layout.Keys(jobID)
	replies, err := c.conn.Tx(ctx, [][]string{
		{"SET", keys.Job, string(record), "PX", strconv.FormatInt(recordTTL.Milliseconds(), 10), "NX"},
		{"ZADD", keys.Queue, "NX", strconv.FormatInt(score, 10), jobID},
	})
	if err != nil {
		return "", fmt.Errorf("seen: enqueue %s: %w", jobID, err)
	}
	if len(replies) != 2 {
		return "", fmt.Errorf("seen: enqueue %s: EXEC returned %d replies, not 2", jobID, len(replies))
	}
	for _, reply := range replies {
		if e, ok := reply.(error); ok {
			return "", fmt.Errorf("seen: enqueue %s: %w", jobID, e)
		}
	}
	if replies[0] == nil {
		return "", ErrJobExists
	}
	return jobID, nil
}

// EnqueueUpdate enqueues one update_progress job (prefer Publisher: it coalesces).
func (c *Client) EnqueueUpdate(ctx context.Context, u Update, opts EnqueueOptions) (string, error) {
	if err := u.Check(); err != nil {
		return "", err
	}
	return c.Enqueue(ctx, UpdateFunction, []any{u}, opts)
}

// EnqueueBatch enqueues one update_progress_batch job carrying updates (at most MaxBatch),
// applied by the worker in one round trip. Every update is checked first: one bad update
// refuses the batch, naming its index.
func (c *Client) EnqueueBatch(ctx context.Context, updates []Update, opts EnqueueOptions,
) (string, error) {
	if len(updates) > MaxBatch {
		return "", invalid("updates", "at most %d updates per batch, got %d", MaxBatch, len(updates))
	}
	for i, u := range updates {
		if err := u.Check(); err != nil {
			var v *ValidationError
			if errors.As(err, &v) {
				v.Index = i
			}
			return "", err
		}
	}
	if updates == nil {
		updates = []Update{}
	}
	return c.Enqueue(ctx, BatchFunction, []any{updates}, opts)
}

// JobStatus is ARQ's status of a job.
type JobStatus string

// The statuses of a job (ARQ's Job.status).
const (
	StatusDeferred   JobStatus = "deferred"    // queued, to start later
	StatusQueued     JobStatus = "queued"      // queued, due
	StatusInProgress JobStatus = "in_progress" // a worker runs it
	StatusComplete   JobStatus = "complete"    // its result is kept (worker.keep_result)
	StatusNotFound   JobStatus = "not_found"   // unknown, or its result expired
)

// Status reads a job's status in one MULTI/EXEC, as ARQ does: complete when its result
// exists, in_progress when a worker holds it, deferred or queued when it is in the queue.
func (c *Client) Status(ctx context.Context, jobID string) (JobStatus, error) {
	if err := CheckJobID("job_id", jobID); err != nil {
		return "", err
	}
	keys := c.layout.Keys(jobID)
	replies, err := c.conn.Tx(ctx, [][]string{
		{"EXISTS", keys.Result}, {"EXISTS", keys.InProgress}, {"ZSCORE", keys.Queue, jobID},
	})
	if err != nil {
		return "", fmt.Errorf("seen: status of %s: %w", jobID, err)
	}
	if len(replies) != 3 {
		return "", fmt.Errorf("seen: status of %s: EXEC returned %d replies", jobID, len(replies))
	}
	complete, err := replyInt(replies[0])
	if err != nil {
		return "", err
	}
	running, err := replyInt(replies[1])
	if err != nil {
		return "", err
	}
	score, queued, err := replyString(replies[2])
	if err != nil {
		return "", err
	}
	switch {
	case complete > 0:
		return StatusComplete, nil
	case running > 0:
		return StatusInProgress, nil
	case queued:
		due, err := strconv.ParseFloat(score, 64)
		if err != nil {
			return "", fmt.Errorf("seen: status of %s: score %q: %w", jobID, score, err)
		}
		if int64(due) > time.Now().UnixMilli() {
			return StatusDeferred, nil
		}
		return StatusQueued, nil
	}
	return StatusNotFound, nil
}

// JobResult is a finished job's result record (docs/wire-format.md section 5).
type JobResult struct {
	JobID    string
	Function string
	Args     []json.RawMessage
	Tries    int64
	Success  bool
	// Result is the job's return value as JSON; for a failure
	// {"error": "<type>", "message": "<text>"}.
	Result     json.RawMessage
	EnqueuedMs int64
	StartedMs  int64
	FinishedMs int64
	Queue      string
}

type resultRecord struct {
	T  *int64            `json:"t"`
	F  string            `json:"f"`
	A  []json.RawMessage `json:"a"`
	S  *bool             `json:"s"`
	R  json.RawMessage   `json:"r"`
	Et int64             `json:"et"`
	St int64             `json:"st"`
	Ft int64             `json:"ft"`
	Q  string            `json:"q"`
	ID string            `json:"id"`
}

// Failure is the error type and message of a failed job ("", "" when it succeeded).
func (r *JobResult) Failure() (kind, message string) {
	if r.Success {
		return "", ""
	}
	var failure struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(r.Result, &failure) != nil {
		return "", string(r.Result)
	}
	return failure.Error, failure.Message
}

// Result reads a finished job's result; nil (and no error) while there is none.
func (c *Client) Result(ctx context.Context, jobID string) (*JobResult, error) {
	if err := CheckJobID("job_id", jobID); err != nil {
		return nil, err
	}
	reply, err := c.conn.Do(ctx, "GET", c.layout.Keys(jobID).Result)
	if err != nil {
		return nil, fmt.Errorf("seen: result of %s: %w", jobID, err)
	}
	text, ok, err := replyString(reply)
	if err != nil || !ok {
		return nil, err
	}
	var rec resultRecord
	if err := json.Unmarshal([]byte(text), &rec); err != nil || rec.S == nil {
		return nil, fmt.Errorf("seen: result of %s is not a result record: %.200s", jobID, text)
	}
	tries := int64(0)
	if rec.T != nil {
		tries = *rec.T
	}
	jid := rec.ID
	if jid == "" {
		jid = jobID
	}
	return &JobResult{
		JobID: jid, Function: rec.F, Args: rec.A, Tries: tries, Success: *rec.S, Result: rec.R,
		EnqueuedMs: rec.Et, StartedMs: rec.St, FinishedMs: rec.Ft, Queue: rec.Q,
	}, nil
}

// WaitResult polls Result every poll until the job has a result or ctx ends (give ctx a
// deadline).
func (c *Client) WaitResult(ctx context.Context, jobID string, poll time.Duration,
) (*JobResult, error) {
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	for {
		result, err := c.Result(ctx, jobID)
		if err != nil || result != nil {
			return result, err
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("seen: no result for %s: %w", jobID, ctx.Err())
		case <-timer.C:
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("seen: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b)
}
