import { crc32 as zlibCrc32 } from "node:zlib";
import { ValidationError } from "./errors.js";
import { checkJobId } from "./ids.js";

export const MAX_SHARDS = 1024;
export const DEFAULT_QUEUE_NAME = "arq:queue";

let table: Uint32Array | undefined;

/** CRC-32/IEEE (as zlib) of bytes; zlib.crc32 where Node has it (>= 20.15). */
export function crc32(bytes: Uint8Array): number {
  return typeof zlibCrc32 === "function" ? zlibCrc32(bytes) >>> 0 : tableCrc32(bytes);
}

/** The same CRC-32 from a table, for Node versions without zlib.crc32. */
export function tableCrc32(bytes: Uint8Array): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (table[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The shard of an id: CRC-32 of its UTF-8 bytes, mod shards. */
export function shardOf(id: string, shards: number): number {
  if (shards <= 1) return 0;
  return crc32(Buffer.from(id, "utf8")) % shards;
}

/** The keys of one job and of the queue shard holding it. */
export interface JobKeys {
  shard: number;
  queue: string;
  abort: string;
  job: string;
  inProgress: string;
  retry: string;
  result: string;
}

/** Where a queue's keys are: ARQ's own keys, or hashtag shards. Must match the workers'
 * queue.layout, queue.name and queue.shards. */
export class QueueLayout {
  private constructor(
    readonly kind: "arq" | "sharded",
    readonly name: string,
    readonly shards: number,
  ) {}

  /** ARQ's layout: the queue sorted set is `name`, per-job keys arq:job:<id>, ... */
  static arq(name: string = DEFAULT_QUEUE_NAME): QueueLayout {
    return new QueueLayout("arq", checkJobId(name, "queue name"), 1);
  }

  /** Every key of shard i starts with the hashtag {<name>:<i>}; a job's shard is shardOf(id, shards). */
  static sharded(name: string, shards: number): QueueLayout {
    checkJobId(name, "queue name");
    if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
      throw new ValidationError("shards", `must be an integer in [1, ${MAX_SHARDS}], got ${shards}`);
    }
    return new QueueLayout("sharded", name, shards);
  }

  /** The keys of jobId (not checked here: the client checks ids before it forms keys). */
  keys(jobId: string): JobKeys {
    if (this.kind === "arq") {
      return {
        shard: 0,
        queue: this.name,
        abort: "arq:abort",
        job: `arq:job:${jobId}`,
        inProgress: `arq:in-progress:${jobId}`,
        retry: `arq:retry:${jobId}`,
        result: `arq:result:${jobId}`,
      };
    }
    const shard = shardOf(jobId, this.shards);
    const tag = `{${this.name}:${shard}}:`;
    return {
      shard,
      queue: `${tag}queue`,
      abort: `${tag}abort`,
      job: `${tag}job:${jobId}`,
      inProgress: `${tag}in-progress:${jobId}`,
      retry: `${tag}retry:${jobId}`,
      result: `${tag}result:${jobId}`,
    };
  }
}
