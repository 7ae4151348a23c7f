// End to end against a real server and a real `seen-worker run` worker, through node-redis.
// tests/conformance/test_node_client.py starts both and runs this with:
//   SEEN_TEST_REDIS_ADDR   host:port of the server (the worker uses db 0)
//   SEEN_TEST_QUEUE_LAYOUT "arq" or "sharded" (SEEN_TEST_QUEUE_SHARDS shards), as the worker
//   SEEN_TEST_SPARE_DB     an empty database no worker reads (refusals, exact put outcomes)
//   SEEN_TEST_PREFIX       prefix of every id this run uses
//   SEEN_TEST_TRACEPARENT  the trace the traced jobs carry (the worker's spans must join it)
// It then reads the download states this test leaves with the Python CacheManager.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { createClient } from "redis";
import {
  type Conn,
  DEFAULT_DOWNLOAD_SETTINGS,
  MAX_BATCH,
  Outcome,
  type ProgressUpdate,
  Publisher,
  QueueLayout,
  SeenClient,
  ValidationError,
  downloadKeys,
  fromNodeRedis,
} from "../src/index.js";

const ADDR = process.env.SEEN_TEST_REDIS_ADDR;
const PREFIX = process.env.SEEN_TEST_PREFIX ?? "node";
const SPARE_DB = Number(process.env.SEEN_TEST_SPARE_DB ?? "9");
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const RUN_TRACEPARENT = process.env.SEEN_TEST_TRACEPARENT || TRACEPARENT;
const WAIT = { timeoutMs: 20_000, pollMs: 20 };

function layout(): QueueLayout {
  return process.env.SEEN_TEST_QUEUE_LAYOUT === "sharded"
    ? QueueLayout.sharded("arq:queue", Number(process.env.SEEN_TEST_QUEUE_SHARDS))
    : QueueLayout.arq();
}

function update(job: string, user: string, status: ProgressUpdate["status"], seq: number): ProgressUpdate {
  return { job_id: job, user_id: user, status, seq, bytes_done: seq * 100, bytes_total: 1000, emitted_at_ms: Date.now() };
}

async function expectRefused(call: () => Promise<unknown>, what: string, index = -1): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof ValidationError, `${what}: ${String(error)}`);
    assert.equal(error.index, index, `${what}: ${error.message}`);
    return true;
  });
}

describe("end to end", { skip: ADDR ? false : "SEEN_TEST_REDIS_ADDR unset: tests/conformance/test_node_client.py runs this" }, () => {
  const main = createClient({ url: `redis://${ADDR}/0` });
  const spare = createClient({ url: `redis://${ADDR}/${SPARE_DB}` });
  before(async () => {
    await main.connect();
    await spare.connect();
  });
  after(async () => {
    await main.quit();
    await spare.quit();
  });

  it("refuses bad input before anything is written", async () => {
    const real = fromNodeRedis(spare);
    let calls = 0;
    const counting: Conn = {
      send: (args) => (calls++, real.send(args)),
      transaction: (commands) => (calls++, real.transaction(commands)),
    };
    const before = await spare.dbSize();
    const client = new SeenClient(counting, layout());
    const publisher = new Publisher(counting, client);
    const good = update("dl-ok", "u1", "downloading", 1);
    const bad: Record<string, unknown> = {
      "job_id with ':'": { ...good, job_id: "dl:1" },
      "job_id with a trailing newline": { ...good, job_id: "dl-1\n" },
      "job_id of 129": { ...good, job_id: "d".repeat(129) },
      "user_id with a space": { ...good, user_id: "u 1" },
      "user_id non-ASCII": { ...good, user_id: "ü" },
      "status unknown": { ...good, status: "done" },
      "seq negative": { ...good, seq: -1 },
      "seq 1.5": { ...good, seq: 1.5 },
      "seq a string": { ...good, seq: "1" },
      "seq true": { ...good, seq: true },
      "seq 2^53": { ...good, seq: 2 ** 53 },
      "bytes_total NaN": { ...good, bytes_total: Number.NaN },
      "emitted_at_ms negative": { ...good, emitted_at_ms: -1 },
      "error of 2001": { ...good, error: "x".repeat(2001) },
      "error a lone surrogate": { ...good, error: "\ud800" },
      "unknown field": { ...good, speed: 1 },
      "not an object": ["dl-1"],
    };
    for (const [name, value] of Object.entries(bad)) {
      const u = value as ProgressUpdate;
      await expectRefused(() => client.enqueueUpdate(u), `enqueueUpdate ${name}`);
      await expectRefused(() => client.enqueueBatch([good, u]), `enqueueBatch ${name}`, 1);
      await expectRefused(() => publisher.publish(u), `publish ${name}`);
    }
    const oversize = Array.from({ length: MAX_BATCH + 1 }, (_, i) => update(`dl-b${i}`, "u1", "downloading", 1));
    await expectRefused(() => client.enqueueBatch(oversize), "a batch of 10,001");
    await expectRefused(() => client.enqueue("ping", [], { jobId: "a{b}" }), "job id with a brace");
    await expectRefused(() => client.enqueue("ping", [], { jobId: "job-1\n" }), "job id with a newline");
    await expectRefused(() => client.enqueue("", []), "empty function");
    await expectRefused(() => client.enqueue("x", [Number.POSITIVE_INFINITY]), "an infinite argument");
    await expectRefused(() => client.enqueue("x", [10n]), "a BigInt argument");
    await expectRefused(() => client.enqueue("ping", [], { deferMs: -1 }), "negative defer");
    await expectRefused(
      () => client.enqueue("ping", [], { trace: { traceparent: TRACEPARENT.toUpperCase() } }),
      "upper-case traceparent",
    );
    await expectRefused(
      () => client.enqueueUpdate(good, { trace: { traceparent: `00-${"0".repeat(32)}-00f067aa0ba902b7-01` } }),
      "all-zero trace id",
    );
    await expectRefused(() => client.enqueue("ping", [], { trace: { tracestate: "k=v" } }), "tracestate alone");
    await expectRefused(() => client.status("a b"), "status of a bad id");
    await expectRefused(() => client.result("a*"), "result of a bad id");
    assert.equal(calls, 0, "refused calls sent commands");
    assert.equal(await spare.dbSize(), before, "DBSIZE changed");
  });

  it("returns the put script's outcome codes exactly where no worker drains", async () => {
    const conn = fromNodeRedis(spare);
    const client = new SeenClient(conn, layout());
    const publisher = new Publisher(conn, client);
    const dl = `${PREFIX}-dl-exact`;
    const steps: [number, string, Outcome][] = [
      [3, "u1", Outcome.SCHEDULED],
      [1, "u1", Outcome.IGNORED],
      [5, "u1", Outcome.COALESCED],
      [5, "u1", Outcome.IGNORED],
      [2, "u1", Outcome.IGNORED],
      [4, "u1", Outcome.IGNORED],
      [6, "u2", Outcome.REJECTED],
    ];
    let scheduledAt = 0;
    for (const [seq, user, want] of steps) {
      assert.equal(await publisher.publish(update(dl, user, "downloading", seq)), want, `seq ${seq} by ${user}`);
      if (want === Outcome.SCHEDULED) scheduledAt = Date.now();
    }
    const keys = downloadKeys(DEFAULT_DOWNLOAD_SETTINGS, dl, "u1");
    assert.equal(await spare.hGet(keys.pending, "seq"), "5");
    const drainId = (await spare.hGet(keys.drain, "id")) as string;
    assert.equal(await client.status(drainId), "queued");
    // a lease of 1 ms: the next newer put replaces the scheduled drain with a new one
    const hurried = new Publisher(conn, client, { ...DEFAULT_DOWNLOAD_SETTINGS, pendingLeaseMs: 1 });
    while (Date.now() - scheduledAt <= 5) await sleep(1); // ends within 5 ms
    assert.equal(await hurried.publish(update(dl, "u1", "downloading", 7)), Outcome.RESCHEDULED);
    const newId = (await spare.hGet(keys.drain, "id")) as string;
    assert.notEqual(newId, drainId);
    assert.equal(await client.status(newId), "queued");
    assert.equal(publisher.owedDrains + hurried.owedDrains, 0);
  });

  it("runs every operation against the worker", async () => {
    const conn = fromNodeRedis(main);
    const client = new SeenClient(conn, layout());
    const trace = { traceparent: RUN_TRACEPARENT, tracestate: "congo=t61rcWkgMzE" };

    const pingId = (await client.enqueue("ping", [], { jobId: `${PREFIX}-ping`, trace })) as string;
    const ping = await client.waitResult(pingId, WAIT);
    assert.deepEqual(
      [ping.success, ping.result, ping.function, ping.jobId, ping.queue],
      [true, "pong", "ping", pingId, client.layout.name],
    );
    assert.equal(await client.status(pingId), "complete");

    const deferredId = `${PREFIX}-deferred`;
    assert.equal(await client.enqueue("ping", [], { jobId: deferredId, deferMs: 3_600_000 }), deferredId);
    assert.equal(await client.enqueue("ping", [], { jobId: deferredId }), null, "de-duplicated by id");
    await client.enqueue("ping", [], { jobId: `${pingId}-none` });
    await client.waitResult(`${pingId}-none`, WAIT); // the worker ran a job enqueued after it ...
    assert.equal(await client.status(deferredId), "deferred"); // ... but not the deferred one
    assert.equal(await client.status(`${PREFIX}-never`), "not_found");

    const single = update(`${PREFIX}-dl-single`, "u1", "downloading", 4);
    let id = (await client.enqueueUpdate(single, { trace })) as string;
    let result = await client.waitResult(id, WAIT);
    assert.deepEqual([result.success, result.result], [true, "applied"]);

    id = (await client.enqueueBatch([
      update(`${PREFIX}-dl-batch-1`, "u1", "downloading", 2),
      update(`${PREFIX}-dl-batch-2`, "u1", "completed", 9),
    ])) as string;
    result = await client.waitResult(id, WAIT);
    assert.deepEqual([result.success, result.result], [true, { applied: 2 }]);

    id = (await client.enqueueUpdate(update(`${PREFIX}-dl-single`, "u2", "downloading", 5))) as string;
    result = await client.waitResult(id, WAIT);
    assert.equal(result.success, false);
    assert.match((result.result as { message: string }).message, /another user/);

    const publisher = new Publisher(conn, client);
    const dl = `${PREFIX}-dl-coalesced`;
    const seqs = [3, 1, 5, 5, 2, 4];
    const newer = [true, false, true, false, false, false];
    for (const [i, seq] of seqs.entries()) {
      const outcome = await publisher.publish(update(dl, "u1", "downloading", seq));
      // a newer update is coalesced, or scheduled when the worker drained the shard meanwhile
      if (newer[i]) assert.ok(outcome === Outcome.SCHEDULED || outcome === Outcome.COALESCED, `seq ${seq}: ${outcome}`);
      else assert.equal(outcome, Outcome.IGNORED, `seq ${seq} (not newer)`);
    }
    const final = await publisher.publish(update(dl, "u1", "completed", 8));
    assert.ok(final === Outcome.SCHEDULED || final === Outcome.COALESCED);
    const progress = downloadKeys(DEFAULT_DOWNLOAD_SETTINGS, dl, "u1").progress;
    const deadline = Date.now() + WAIT.timeoutMs;
    for (;;) {
      const state = await main.hGetAll(progress);
      if (state.seq === "8" && state.status === "completed" && state.user === "u1") break;
      assert.ok(Date.now() < deadline, `${dl} never reached seq 8: ${JSON.stringify(state)}`);
      await sleep(20);
    }
  });
});
