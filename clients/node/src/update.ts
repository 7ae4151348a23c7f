import { ValidationError } from "./errors.js";
import { checkDownloadId } from "./ids.js";

export type Status = "queued" | "downloading" | "paused" | "completed" | "failed" | "cancelled";
export const STATUSES: readonly Status[] = ["queued", "downloading", "paused", "completed", "failed", "cancelled"];

/** Largest integer of a payload (2^53-1). */
export const MAX_INT = Number.MAX_SAFE_INTEGER;
/** Longest error text, in characters (code points). */
export const MAX_ERROR_CHARS = 2000;
/** Most updates one update_progress_batch job carries. */
export const MAX_BATCH = 10000;

/** One progress report of a download, in its wire form (docs/wire-format.md section 4). */
export interface ProgressUpdate {
  job_id: string;
  user_id: string;
  status: Status;
  /** Orders a download's updates: higher wins, equal is a duplicate. */
  seq: number;
  bytes_done?: number;
  /** 0 = unknown. */
  bytes_total?: number;
  /** Producer's clock (ms) when bytes_done was measured; null: the worker's clock. */
  emitted_at_ms?: number | null;
  /** Reason of a failure, at most 2,000 characters. */
  error?: string | null;
}

/** An update with every field, in the order every producer writes them. */
export interface NormalizedUpdate {
  job_id: string;
  user_id: string;
  status: Status;
  seq: number;
  bytes_done: number;
  bytes_total: number;
  emitted_at_ms: number | null;
  error: string | null;
}

const FIELDS = ["job_id", "user_id", "status", "seq", "bytes_done", "bytes_total", "emitted_at_ms", "error"];

function count(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_INT) {
    const shown = typeof value === "string" ? JSON.stringify(value) : String(value);
    throw new ValidationError(field, `must be an integer in [0, ${MAX_INT}], got ${shown.slice(0, 40)}`);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Applies the worker's rules to an update (a JSON-shaped object) and returns it with
 * every field; throws ValidationError naming the field. */
export function checkUpdate(value: unknown): NormalizedUpdate {
  if (!isPlainObject(value)) throw new ValidationError("", "an update must be an object");
  const unknown = Object.keys(value).filter((k) => !FIELDS.includes(k)).sort();
  if (unknown.length > 0) {
    throw new ValidationError(unknown[0] as string, "unknown field (a typo must not be ignored)");
  }
  for (const field of ["job_id", "user_id", "status", "seq"]) {
    if (!(field in value)) throw new ValidationError(field, "is required");
  }
  const jobId = checkDownloadId(value.job_id, "job_id");
  const userId = checkDownloadId(value.user_id, "user_id");
  if (typeof value.status !== "string" || !STATUSES.includes(value.status as Status)) {
    throw new ValidationError("status", `${JSON.stringify(value.status)} is not one of ${STATUSES.join(", ")}`);
  }
  const seq = count(value.seq, "seq");
  const done = "bytes_done" in value ? count(value.bytes_done, "bytes_done") : 0;
  const total = "bytes_total" in value ? count(value.bytes_total, "bytes_total") : 0;
  const emitted = value.emitted_at_ms ?? null;
  if (emitted !== null) count(emitted, "emitted_at_ms");
  const error = value.error ?? null;
  if (error !== null) {
    if (typeof error !== "string") throw new ValidationError("error", "must be a string or null");
    if (/\p{Cs}/u.test(error)) throw new ValidationError("error", "has a lone surrogate (not valid Unicode)");
    const chars = [...error].length;
    if (chars > MAX_ERROR_CHARS) {
      throw new ValidationError("error", `is ${chars} characters, at most ${MAX_ERROR_CHARS}`);
    }
  }
  return {
    job_id: jobId,
    user_id: userId,
    status: value.status as Status,
    seq,
    bytes_done: done,
    bytes_total: total,
    emitted_at_ms: emitted as number | null,
    error: error as string | null,
  };
}

/** Checks every update of a batch (at most MAX_BATCH); the error names the first bad index. */
export function checkBatch(updates: unknown): NormalizedUpdate[] {
  if (!Array.isArray(updates)) throw new ValidationError("updates", "must be an array");
  if (updates.length > MAX_BATCH) {
    throw new ValidationError("updates", `at most ${MAX_BATCH} updates per batch, got ${updates.length}`);
  }
  return updates.map((update, index) => {
    try {
      return checkUpdate(update);
    } catch (error) {
      if (error instanceof ValidationError) throw error.at(index);
      throw error;
    }
  });
}
