package seen

import (
	"fmt"
	"hash/crc32"
)

// MaxShards is the largest shard count of the sharded queue layout.
const MaxShards = 1024

// DefaultQueueName is the queue name seen-worker and ARQ use unless queue.name says otherwise.
const DefaultQueueName = "arq:queue"

// ShardOf is the shard of an id: CRC-32 (IEEE, as zlib) of its UTF-8 bytes, mod shards.
// The sharded queue layout and the download keys both use it.
func ShardOf(id string, shards int) int {
	if shards <= 1 {
		return 0
	}
	return int(crc32.ChecksumIEEE([]byte(id)) % uint32(shards))
}

// Layout is where a queue's keys are: ARQ's own keys (ARQLayout) or hashtag shards
// (ShardedLayout). It must match the workers' queue.layout, queue.name and queue.shards.
// The zero Layout is ARQ's layout of the default queue "arq:queue".
type Layout struct {
	sharded bool
	name    string
	shards  int
}

// ARQLayout is ARQ's layout: the queue sorted set is name ("" for "arq:queue") and every
// per-job key has ARQ's global prefix (arq:job:<id>, arq:result:<id>, ...).
func ARQLayout(name string) (Layout, error) {
	if name == "" {
		name = DefaultQueueName
	}
	if err := CheckJobID("queue name", name); err != nil {
		return Layout{}, err
	}
	return Layout{name: name, shards: 1}, nil
}

// ShardedLayout splits the queue into shards: every key of shard i starts with the hashtag
// {<name>:<i>}, and a job's shard is ShardOf(id, shards).
func ShardedLayout(name string, shards int) (Layout, error) {
	if name == "" {
		name = DefaultQueueName
	}
	if err := CheckJobID("queue name", name); err != nil {
		return Layout{}, err
	}
	if shards < 1 || shards > MaxShards {
		return Layout{}, invalid("shards", "must be in [1, %d], got %d", MaxShards, shards)
	}
	return Layout{sharded: true, name: name, shards: shards}, nil
}

// Sharded tells the sharded layout from ARQ's.
func (l Layout) Sharded() bool { return l.sharded }

// Name is the queue name.
func (l Layout) Name() string {
	if l.name == "" {
		return DefaultQueueName
	}
	return l.name
}

// Shards is the number of shards (1 in ARQ's layout).
func (l Layout) Shards() int {
	if !l.sharded {
		return 1
	}
	return l.shards
}

// JobKeys are the keys of one job and of the queue shard holding it.
type JobKeys struct {
	Shard      int
	Queue      string // sorted set of job ids scored by the time (ms) they may start
	Abort      string // sorted set of ids to abort
	Job        string // the job record
	InProgress string // set while a worker runs the job
	Retry      string // try counter
	Result     string // the result record
}

// Keys are the keys of jobID (not checked: the client checks ids before it forms keys).
func (l Layout) Keys(jobID string) JobKeys {
	if !l.sharded {
		return JobKeys{
			Queue:      l.Name(),
			Abort:      "arq:abort",
			Job:        "arq:job:" + jobID,
			InProgress: "arq:in-progress:" + jobID,
			Retry:      "arq:retry:" + jobID,
			Result:     "arq:result:" + jobID,
		}
	}
	shard := ShardOf(jobID, l.shards)
	tag := fmt.Sprintf("{%s:%d}:", l.name, shard)
	return JobKeys{
		Shard:      shard,
		Queue:      tag + "queue",
		Abort:      tag + "abort",
		Job:        tag + "job:" + jobID,
		InProgress: tag + "in-progress:" + jobID,
		Retry:      tag + "retry:" + jobID,
		Result:     tag + "result:" + jobID,
	}
}
