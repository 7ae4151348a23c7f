import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Conn, type Reply, replyInt, replyString } from "./conn.js";
import { ValidationError } from "./errors.js";
import { checkJobId } from "./ids.js";
import { QueueLayout } from "./layout.js";
import { BATCH_FUNCTION, jobRecord, UPDATE_FUNCTION } from "./record.js";
import type { TraceContext } from "./trace.js";
import { checkBatch, checkUpdate, type ProgressUpdate } from "./update.js";

/** How long a job record lives (ARQ's expires_extra_ms: one day). */
const RECORD_TTL_MS = 86_400_000;

export interface EnqueueOptions {
  /** The job's id; a fresh random one when absent. While a job with this id exists, another
   * enqueue with it is refused (enqueue resolves to null): de-duplication by id. */
  jobId?: string;
  /** Start the job no earlier than this many ms from now. */
  deferMs?: number;
  /** Start the job no earlier than this time (instead of deferMs). */
  at?: Date | number;
  /** W3C trace context to carry to the worker (record field "tc"). */
  trace?: TraceContext;
}

/** ARQ's status of a job. */
export type JobStatus = "deferred" | "queued" | "in_progress" | "complete" | "not_found";

/** A finished job's result record (docs/wire-format.md section 5). */
export interface JobResult {
  jobId: string;
  function: string;
  args: unknown[];
  tries: number;
  success: boolean;
  /** The job's return value; for a failure {error: "<type>", message: "<text>"}. */
  result: unknown;
  enqueuedMs: number;
  startedMs: number;
  finishedMs: number;
  queue: string;
}

export interface WaitOptions {
  /** Give up after this many ms (default 30 s). */
  timeoutMs?: number;
  /** Poll every this many ms (default 50). */
  pollMs?: number;
}

/** Enqueues jobs on one queue and reads their status and results. */
export class SeenClient {
  /** A client of the queue whose keys `layout` describes, on conn (the queue store). */
  constructor(
    readonly conn: Conn,
    readonly layout: QueueLayout = QueueLayout.arq(),
  ) {}

  /** Writes one job: its record (SET NX, one day expiry) and its id in the queue (ZADD NX,
   * scored by the time it may start), in one MULTI/EXEC. Resolves to the job id, or null
   * when a job with that id exists. */
  async enqueue(fn: string, args: readonly unknown[] = [], options: EnqueueOptions = {}): Promise<string | null> {
    const jobId = checkJobId(options.jobId ?? randomBytes(16).toString("hex"), "job_id");
    const deferMs = options.deferMs ?? 0;
    if (typeof deferMs !== "number" || !Number.isFinite(deferMs) || deferMs < 0) {
      throw new ValidationError("defer", `must be a number of ms >= 0, got ${deferMs}`);
    }
    const now = Date.now();
    let score = now + Math.trunc(deferMs);
    if (options.at !== undefined) score = options.at instanceof Date ? options.at.getTime() : options.at;
    if (!Number.isSafeInteger(score) || score <= 0) throw new ValidationError("at", "must be a time after the epoch");
    const record = jobRecord(fn, args, now, options.trace);
    const keys = this.layout.keys(jobId);
    const replies = await this.conn.transaction([
      ["SET", keys.job, record, "PX", String(RECORD_TTL_MS), "NX"],
      ["ZADD", keys.queue, "NX", String(score), jobId],
    ]);
    if (replies.length !== 2) throw new Error(`seen: enqueue ${jobId}: EXEC returned ${replies.length} replies`);
    for (const reply of replies) if (reply instanceof Error) throw reply;
    return replies[0] === null ? null : jobId;
  }

  /** One update_progress job (prefer Publisher: it coalesces). */
  async enqueueUpdate(update: ProgressUpdate, options: EnqueueOptions = {}): Promise<string | null> {
    return this.enqueue(UPDATE_FUNCTION, [checkUpdate(update)], options);
  }

  /** One update_progress_batch job carrying at most 10,000 updates, applied in one round
   * trip; one bad update refuses the batch, naming its index. */
  async enqueueBatch(updates: readonly ProgressUpdate[], options: EnqueueOptions = {}): Promise<string | null> {
    return this.enqueue(BATCH_FUNCTION, [checkBatch(updates)], options);
  }

  /** A job's status in one MULTI/EXEC, as ARQ reads it. */
  async status(jobId: string): Promise<JobStatus> {
    checkJobId(jobId, "job_id");
    const keys = this.layout.keys(jobId);
    const replies = await this.conn.transaction([
      ["EXISTS", keys.result],
      ["EXISTS", keys.inProgress],
      ["ZSCORE", keys.queue, jobId],
    ]);
    if (replyInt(replies[0] as Reply) > 0) return "complete";
    if (replyInt(replies[1] as Reply) > 0) return "in_progress";
    const score = replyString(replies[2] as Reply);
    if (score === null) return "not_found";
    return Number(score) > Date.now() ? "deferred" : "queued";
  }

  /** A finished job's result; null while there is none. */
  async result(jobId: string): Promise<JobResult | null> {
    checkJobId(jobId, "job_id");
    const text = replyString(await this.conn.send(["GET", this.layout.keys(jobId).result]));
    if (text === null) return null;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`seen: result of ${jobId} is not JSON: ${text.slice(0, 200)}`);
    }
    if (typeof record !== "object" || record === null || typeof record.s !== "boolean") {
      throw new Error(`seen: result of ${jobId} is not a result record: ${text.slice(0, 200)}`);
    }
    return {
      jobId: typeof record.id === "string" ? record.id : jobId,
      function: String(record.f),
      args: Array.isArray(record.a) ? record.a : [],
      tries: typeof record.t === "number" ? record.t : 0,
      success: record.s,
      result: record.r,
      enqueuedMs: Number(record.et),
      startedMs: Number(record.st),
      finishedMs: Number(record.ft),
      queue: typeof record.q === "string" ? record.q : "",
    };
  }

  /** Polls result until the job has one; rejects after timeoutMs. */
  async waitResult(jobId: string, options: WaitOptions = {}): Promise<JobResult> {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    for (;;) {
      const result = await this.result(jobId);
      if (result !== null) return result;
      if (Date.now() >= deadline) throw new Error(`seen: no result for ${jobId} within ${options.timeoutMs ?? 30_000} ms`);
      await sleep(options.pollMs ?? 50);
    }
  }
}
