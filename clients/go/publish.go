package seen

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// DownloadSettings are the worker settings a coalescing producer must share with the
// deployment (settings.toml): the key namespace, the download shards, the drain lease and
// the pending TTL. DefaultDownloadSettings has the defaults.
type DownloadSettings struct {
	Namespace    string        // cache.namespace ("seen")
	Shards       int           // download.shards (16)
	PendingLease time.Duration // download.pending_lease (15 s)
	PendingTTL   time.Duration // download.pending_ttl (600 s)
}

// DefaultDownloadSettings are settings.toml's defaults.
func DefaultDownloadSettings() DownloadSettings {
	return DownloadSettings{
		Namespace: "seen", Shards: 16, PendingLease: 15 * time.Second, PendingTTL: 600 * time.Second,
	}
}

// Check refuses settings the worker would refuse.
func (s DownloadSettings) Check() error {
	if err := CheckDownloadID("namespace", s.Namespace); err != nil {
		return err
	}
	if s.Shards < 1 || s.Shards > MaxShards {
		return invalid("shards", "must be in [1, %d], got %d", MaxShards, s.Shards)
	}
	if s.PendingLease < time.Millisecond {
		return invalid("pending_lease", "must be at least 1 ms, got %s", s.PendingLease)
	}
	if s.PendingTTL < time.Second || s.PendingTTL%time.Second != 0 {
		return invalid("pending_ttl", "must be whole seconds, at least 1, got %s", s.PendingTTL)
	}
	return nil
}

// DownloadKeys are the keys of one download (docs/wire-format.md sections 7 and 8), all
// under its shard's hashtag {dl:<shard>}.
type DownloadKeys struct {
	Shard      int
	Progress   string // hash: the applied state
	Pending    string // hash: the newest published, not yet applied update
	PendingSet string // zset of the shard's downloads with a pending update
	Drain      string // hash: the shard's scheduled drain job
	Stats      string // hash of counters
	Events     string // the shard's event stream
	Active     string // the shard's active-downloads index
	UserIndex  string // the shard's index of userID's downloads
}

// Keys are the keys of download jobID of userID (ids not checked here).
func (s DownloadSettings) Keys(jobID, userID string) DownloadKeys {
	shard := ShardOf(jobID, s.Shards)
	tag := fmt.Sprintf("%s:{dl:%d}:", s.Namespace, shard)
	return DownloadKeys{
		Shard:      shard,
		Progress:   tag + "progress:" + jobID,
		Pending:    tag + "pending:" + jobID,
		PendingSet: tag + "pending",
		Drain:      tag + "drain",
		Stats:      tag + "stats",
		Events:     tag + "events",
		Active:     tag + "active",
		UserIndex:  tag + "user:" + userID,
	}
}

// PendingPut is the KEYS and ARGV of download_pending_put.lua for u, in its header's order
// (cache/download/_calls.py pending_put).
func (s DownloadSettings) PendingPut(u Update, drainID string, nowMs int64) (keys, args []string) {
	k := s.Keys(u.JobID, u.UserID)
	keys = []string{k.Pending, k.PendingSet, k.Drain, k.Progress, k.Stats}
	args = append(u.putArgs(), drainID, strconv.FormatInt(nowMs, 10),
		strconv.FormatInt(s.PendingLease.Milliseconds(), 10),
		strconv.FormatInt(s.PendingTTL.Milliseconds(), 10))
	return keys, args
}

// NewDrainID is a fresh id for a drain job of shard: progress-drain:<shard>:<16 hex>.
func NewDrainID(shard int) string {
	return "progress-drain:" + strconv.Itoa(shard) + ":" + randomHex(8)
}

// Outcome is what a coalescing put did.
type Outcome int

// The outcomes of download_pending_put.lua.
const (
	Ignored     Outcome = 0 // not newer than the applied or pending update
	Coalesced   Outcome = 1 // stored; a drain job is already scheduled
	Scheduled   Outcome = 2 // stored; a drain job was scheduled (and enqueued)
	Rescheduled Outcome = 3 // stored; the scheduled drain outlived its lease and was replaced
	Rejected    Outcome = 4 // another user's download
)

func (o Outcome) String() string {
	switch o {
	case Ignored:
		return "ignored"
	case Coalesced:
		return "coalesced"
	case Scheduled:
		return "scheduled"
	case Rescheduled:
		return "rescheduled"
	case Rejected:
		return "rejected"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// NeedsDrain tells whether the put handed the producer a drain job to enqueue.
func (o Outcome) NeedsDrain() bool { return o == Scheduled || o == Rescheduled }

// Publisher publishes progress with coalescing, as the Python ProgressPublisher: each
// update becomes its download's pending update (a newer seq replaces an older one, never
// the reverse) and a drain job is enqueued only when its shard has none scheduled. So a
// download's updates cost one job per drain, not one job each, however fast they come.
type Publisher struct {
	cache    Conn
	queue    *Client
	settings DownloadSettings

	mu   sync.Mutex
	owed map[string]int // drain job id -> shard: handed to us, not yet enqueued
}

// NewPublisher publishes on the cache store (cache) and enqueues drain jobs with queue (its
// queue store may be another one). settings must be the deployment's.
func NewPublisher(cache Conn, queue *Client, settings DownloadSettings) (*Publisher, error) {
	if err := settings.Check(); err != nil {
		return nil, err
	}
	return &Publisher{cache: cache, queue: queue, settings: settings, owed: map[string]int{}}, nil
}

// Publish stores u as its download's pending update (one EVALSHA) and, when the put says
// so, enqueues the shard's drain job (one MULTI/EXEC).
func (p *Publisher) Publish(ctx context.Context, u Update) (Outcome, error) {
	if err := u.Check(); err != nil {
		return 0, err
	}
	shard := ShardOf(u.JobID, p.settings.Shards)
	keys, args := p.settings.PendingPut(u, NewDrainID(shard), time.Now().UnixMilli())
	reply, err := p.evalPut(ctx, keys, args)
	if err != nil {
		return 0, fmt.Errorf("seen: could not store the update of %s: %w", u.JobID, err)
	}
	parts, ok := reply.([]any)
	if !ok || len(parts) != 2 {
		return 0, fmt.Errorf("seen: download_pending_put returned %v, not [code, id]", reply)
	}
	code, err := replyInt(parts[0])
	if err != nil {
		return 0, fmt.Errorf("seen: download_pending_put code: %w", err)
	}
	outcome := Outcome(code)
	if outcome.NeedsDrain() {
		drainID, _, err := replyString(parts[1])
		if err != nil || drainID == "" {
			return outcome, fmt.Errorf("seen: download_pending_put gave no drain id (%v)", parts[1])
		}
		p.mu.Lock()
		p.owed[drainID] = shard
		p.mu.Unlock()
	}
	return outcome, p.Flush(ctx)
}

func (p *Publisher) evalPut(ctx context.Context, keys, args []string) (any, error) {
	source, sha := PendingPutScript()
	tail := append(append([]string{strconv.Itoa(len(keys))}, keys...), args...)
	reply, err := p.cache.Do(ctx, "EVALSHA", append([]string{sha}, tail...)...)
	if isNoScript(err) {
		reply, err = p.cache.Do(ctx, "EVAL", append([]string{source}, tail...)...)
	}
	return reply, err
}

// Flush enqueues the drain jobs this publisher was handed and could not enqueue yet (a
// failed enqueue is kept and retried by the next Publish or Flush; the worker's
// repair_pending_progress also reschedules a lost drain after download.pending_lease).
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	ids := make([]string, 0, len(p.owed))
	for id := range p.owed {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		p.mu.Lock()
		shard, ok := p.owed[id]
		p.mu.Unlock()
		if !ok {
			continue
		}
		_, err := p.queue.Enqueue(ctx, DrainFunction, []any{shard}, EnqueueOptions{JobID: id})
		if err != nil && !errors.Is(err, ErrJobExists) {
			return fmt.Errorf("seen: stored the update but could not enqueue drain job %s "+
				"(retried on the next Publish or Flush): %w", id, err)
		}
		p.mu.Lock()
		delete(p.owed, id)
		p.mu.Unlock()
	}
	return nil
}

// Owed is the number of drain jobs waiting to be enqueued (see Flush).
func (p *Publisher) Owed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.owed)
}
