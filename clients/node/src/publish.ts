import { randomBytes } from "node:crypto";
import type { SeenClient } from "./client.js";
import { type Conn, isNoScript, type Reply, replyInt, replyString } from "./conn.js";
import { ValidationError } from "./errors.js";
import { checkDownloadId } from "./ids.js";
import { MAX_SHARDS, shardOf } from "./layout.js";
import { DRAIN_FUNCTION } from "./record.js";
import { pendingPutScript } from "./script.js";
import { checkUpdate, type NormalizedUpdate, type ProgressUpdate } from "./update.js";

/** The worker settings a coalescing producer shares with the deployment (settings.toml). */
export interface DownloadSettings {
  /** cache.namespace */
  namespace: string;
  /** download.shards */
  shards: number;
  /** download.pending_lease, in ms */
  pendingLeaseMs: number;
  /** download.pending_ttl, in ms (whole seconds) */
  pendingTtlMs: number;
}

export const DEFAULT_DOWNLOAD_SETTINGS: Readonly<DownloadSettings> = Object.freeze({
  namespace: "seen",
  shards: 16,
  pendingLeaseMs: 15_000,
  pendingTtlMs: 600_000,
});

export function checkDownloadSettings(s: DownloadSettings): DownloadSettings {
  checkDownloadId(s.namespace, "namespace");
  if (!Number.isInteger(s.shards) || s.shards < 1 || s.shards > MAX_SHARDS) {
    throw new ValidationError("shards", `must be an integer in [1, ${MAX_SHARDS}], got ${s.shards}`);
  }
  if (!Number.isInteger(s.pendingLeaseMs) || s.pendingLeaseMs < 1) {
    throw new ValidationError("pending_lease", `must be a whole number of ms >= 1, got ${s.pendingLeaseMs}`);
  }
  if (!Number.isInteger(s.pendingTtlMs) || s.pendingTtlMs < 1000 || s.pendingTtlMs % 1000 !== 0) {
    throw new ValidationError("pending_ttl", `must be whole seconds (>= 1000 ms), got ${s.pendingTtlMs}`);
  }
  return s;
}

/** The keys of one download, under its shard's hashtag {dl:<shard>}. */
export interface DownloadKeys {
  shard: number;
  progress: string;
  pending: string;
  pendingSet: string;
  drain: string;
  stats: string;
  events: string;
  active: string;
  userIndex: string;
}

export function downloadKeys(settings: DownloadSettings, jobId: string, userId: string): DownloadKeys {
  const shard = shardOf(jobId, settings.shards);
  const tag = `${settings.namespace}:{dl:${shard}}:`;
  return {
    shard,
    progress: `${tag}progress:${jobId}`,
    pending: `${tag}pending:${jobId}`,
    pendingSet: `${tag}pending`,
    drain: `${tag}drain`,
    stats: `${tag}stats`,
    events: `${tag}events`,
    active: `${tag}active`,
    userIndex: `${tag}user:${userId}`,
  };
}

/** KEYS and ARGV of download_pending_put.lua for an (already checked) update. */
export function pendingPut(
  settings: DownloadSettings,
  update: NormalizedUpdate,
  drainId: string,
  nowMs: number,
): { keys: string[]; args: string[] } {
  const k = downloadKeys(settings, update.job_id, update.user_id);
  return {
    keys: [k.pending, k.pendingSet, k.drain, k.progress, k.stats],
    args: [
      update.job_id,
      update.user_id,
      String(update.seq),
      update.status,
      String(update.bytes_done),
      String(update.bytes_total),
      String(update.emitted_at_ms ?? 0),
      update.error ?? "",
      drainId,
      String(nowMs),
      String(settings.pendingLeaseMs),
      String(settings.pendingTtlMs),
    ],
  };
}

/** A fresh drain job id: progress-drain:<shard>:<16 hex>. */
export function newDrainId(shard: number): string {
  return `progress-drain:${shard}:${randomBytes(8).toString("hex")}`;
}

/** What a coalescing put did. */
export const Outcome = {
  IGNORED: 0,
  COALESCED: 1,
  SCHEDULED: 2,
  RESCHEDULED: 3,
  REJECTED: 4,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

export function outcomeName(outcome: Outcome): string {
  return ["ignored", "coalesced", "scheduled", "rescheduled", "rejected"][outcome] ?? `outcome(${outcome})`;
}

/** Whether the put handed the producer a drain job to enqueue. */
export function needsDrain(outcome: Outcome): boolean {
  return outcome === Outcome.SCHEDULED || outcome === Outcome.RESCHEDULED;
}

/**
 * Publishes progress with coalescing, as the Python ProgressPublisher: each update becomes its
 * download's pending update (a newer seq replaces an older one, never the reverse) and a drain
 * job is enqueued only when its shard has none scheduled.
 */
export class Publisher {
  private readonly owed = new Map<string, number>();
  readonly settings: DownloadSettings;

  /** Publishes on the cache store (cache) and enqueues drain jobs with queue. */
  constructor(
    readonly cache: Conn,
    readonly queue: SeenClient,
    settings: DownloadSettings = DEFAULT_DOWNLOAD_SETTINGS,
  ) {
    this.settings = checkDownloadSettings({ ...settings });
  }

  /** Drain jobs handed to this publisher and not enqueued yet (see flush). */
  get owedDrains(): number {
    return this.owed.size;
  }

  /** Stores the update as its download's pending one (one EVALSHA) and, when the put says
   * so, enqueues the shard's drain job (one MULTI/EXEC). */
  async publish(update: ProgressUpdate): Promise<Outcome> {
    const checked = checkUpdate(update);
    const shard = shardOf(checked.job_id, this.settings.shards);
    const { keys, args } = pendingPut(this.settings, checked, newDrainId(shard), Date.now());
    const reply = await this.evalPut(keys, args);
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new Error(`seen: download_pending_put returned ${String(reply)}, not [code, id]`);
    }
    const outcome = replyInt(reply[0] as Reply) as Outcome;
    if (needsDrain(outcome)) {
      const drainId = replyString(reply[1] as Reply);
      if (!drainId) throw new Error("seen: download_pending_put gave no drain id");
      this.owed.set(drainId, shard);
    }
    await this.flush();
    return outcome;
  }

  private async evalPut(keys: string[], args: string[]): Promise<Reply> {
    const { source, sha } = pendingPutScript();
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.cache.send(["EVALSHA", sha, ...tail]);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.cache.send(["EVAL", source, ...tail]);
    }
  }

  /** Enqueues the drain jobs this publisher could not enqueue yet (kept and retried by the
   * next publish or flush; the worker's repair_pending_progress also replaces a lost drain
   * after download.pending_lease). */
  async flush(): Promise<void> {
    for (const [drainId, shard] of [...this.owed.entries()].sort()) {
      try {
        await this.queue.enqueue(DRAIN_FUNCTION, [shard], { jobId: drainId });
      } catch (error) {
        throw new Error(
          `seen: stored the update but could not enqueue drain job ${drainId} (retried on the next publish or flush): ${(error as Error).message}`,
          { cause: error },
        );
      }
      this.owed.delete(drainId); // enqueued, or already there (null): done either way
    }
  }
}
