// The shared conformance vectors (tests/conformance/vectors/*.json), the same files the
// Python and Go producers' tests read.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_DOWNLOAD_SETTINGS,
  type DownloadSettings,
  DRAIN_FUNCTION,
  MAX_BATCH,
  QueueLayout,
  UPDATE_FUNCTION,
  BATCH_FUNCTION,
  ValidationError,
  checkBatch,
  checkDownloadSettings,
  checkJobId,
  checkTraceContext,
  checkUpdate,
  downloadKeys,
  jobRecord,
  needsDrain,
  newDrainId,
  outcomeName,
  pendingPut,
  shardOf,
  type Outcome,
} from "../src/index.js";
import { vectors } from "./helpers.js";

function refused(fn: () => unknown, field: string | null, index = -1): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ValidationError, `want a ValidationError, got ${String(error)}`);
    if (field !== null) assert.equal(error.field, field, error.message);
    assert.equal(error.index, index, error.message);
    return true;
  });
}

function suite(name: string, body: (v: any) => void): void {
  const v = vectors(name);
  describe(name, { skip: v === null ? "conformance vectors not found: run inside the repository" : false }, () =>
    body(v),
  );
}

suite("shards", (v) => {
  it("matches every vector", () => {
    assert.ok(v.vectors.length > 0);
    for (const x of v.vectors) assert.equal(shardOf(x.id, x.shards), x.shard, `${x.id} mod ${x.shards}`);
  });
});

function layoutOf(x: any): QueueLayout {
  return x.layout === "sharded" ? QueueLayout.sharded(x.name, x.shards) : QueueLayout.arq(x.name);
}

suite("queue_keys", (v) => {
  it("forms the keys of both layouts", () => {
    for (const x of v.layouts) {
      const k = layoutOf(x).keys(x.id);
      assert.deepEqual(
        {
          shard: k.shard,
          queue: k.queue,
          abort: k.abort,
          job: k.job,
          in_progress: k.inProgress,
          retry: k.retry,
          result: k.result,
        },
        x.keys,
      );
    }
  });
  it("refuses invalid layouts", () => {
    for (const x of v.invalid) assert.throws(() => layoutOf(x), ValidationError, x.why);
  });
});

suite("job_ids", (v) => {
  it("accepts the valid ids", () => {
    for (const id of v.valid) assert.equal(checkJobId(id), id);
  });
  it("refuses the invalid ones", () => {
    for (const x of v.invalid) refused(() => checkJobId(x.id), "job_id");
  });
});

suite("updates", (v) => {
  it("normalizes valid updates and writes their records byte for byte", () => {
    for (const x of v.valid) {
      const update = checkUpdate(x.input);
      assert.deepEqual(update, x.update, x.name);
      assert.deepEqual(Object.keys(update), Object.keys(x.update), x.name);
      assert.equal(jobRecord(UPDATE_FUNCTION, [update], v.enqueue_ms), x.record, x.name);
    }
  });
  it("refuses invalid updates, naming the field", () => {
    assert.ok(v.invalid.length > 40);
    for (const x of v.invalid) refused(() => checkUpdate(x.input), x.field ?? null);
  });
  it("cannot see the JSON-text-only cases (JSON.parse makes 1.0 the integer 1)", () => {
    for (const x of v.invalid_json_text) assert.doesNotThrow(() => checkUpdate(JSON.parse(x.text)), x.name);
  });
});

suite("batches", (v) => {
  it("has the worker's limit", () => assert.equal(MAX_BATCH, v.max_updates));
  it("writes the batch record", () => {
    const record = jobRecord(BATCH_FUNCTION, [checkBatch(v.record.updates)], v.enqueue_ms);
    assert.equal(record, v.record.record);
  });
  it("accepts and refuses batches by size", () => {
    const make = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ ...v.sizes.template, job_id: v.sizes.template.job_id.replace("{i}", i) }));
    for (const n of v.sizes.accepted) assert.equal(checkBatch(make(n)).length, n);
    for (const n of v.sizes.refused) refused(() => checkBatch(make(n)), "updates");
  });
  it("names the first bad update", () => {
    for (const x of v.invalid) refused(() => checkBatch(x.updates), x.field, x.index);
  });
});

suite("records", (v) => {
  it("writes every record byte for byte", () => {
    for (const x of v.valid) {
      const trace = { traceparent: x.traceparent, tracestate: x.tracestate };
      assert.equal(jobRecord(x.function, x.args, v.enqueue_ms, trace), x.record, x.name);
    }
  });
  it("refuses invalid function names", () => {
    for (const x of v.invalid) refused(() => jobRecord(x.function, x.args, v.enqueue_ms), x.field);
  });
});

suite("trace_context", (v) => {
  it("accepts the valid ones", () => {
    for (const x of v.valid) assert.equal(checkTraceContext(x)?.traceparent, x.traceparent);
  });
  it("refuses the invalid ones, naming the field", () => {
    for (const x of v.invalid) refused(() => checkTraceContext(x), x.field);
  });
});

function settingsOf(s: any): DownloadSettings {
  return { namespace: s.namespace, shards: s.shards, pendingLeaseMs: s.pending_lease_ms, pendingTtlMs: s.pending_ttl_ms };
}

suite("pending_put", (v) => {
  it("has the defaults of settings.toml", () => assert.deepEqual({ ...DEFAULT_DOWNLOAD_SETTINGS }, settingsOf(v.defaults)));
  it("builds the exact KEYS and ARGV", () => {
    for (const x of v.vectors) {
      const settings = checkDownloadSettings(settingsOf(x.settings));
      const update = checkUpdate(x.update);
      assert.equal(shardOf(update.job_id, settings.shards), x.shard);
      assert.deepEqual(pendingPut(settings, update, x.drain_id, x.now_ms), { keys: x.keys, args: x.args });
    }
  });
  it("makes drain ids of the pattern and names the outcomes", () => {
    const pattern = new RegExp(v.drain_id_pattern);
    for (const shard of [0, 9, 1023]) assert.equal(pattern.exec(newDrainId(shard))?.[1], String(shard));
    assert.equal(DRAIN_FUNCTION, v.drain_function);
    for (const [code, name] of Object.entries(v.outcomes)) {
      assert.equal(outcomeName(Number(code) as Outcome), name);
      assert.equal(needsDrain(Number(code) as Outcome), v.enqueue_drain_on.includes(Number(code)));
    }
  });
  it("forms every download key", () => {
    for (const x of v.download_keys) {
      const k = downloadKeys({ ...DEFAULT_DOWNLOAD_SETTINGS, namespace: x.namespace, shards: x.shards }, x.job_id, x.user_id);
      assert.deepEqual(
        [k.shard, k.progress, k.pending, k.pendingSet, k.drain, k.stats, k.events, k.active, k.userIndex],
        [x.shard, x.progress, x.pending, x.pending_set, x.drain, x.stats, x.events, x.active, x.user_index],
      );
    }
  });
});
