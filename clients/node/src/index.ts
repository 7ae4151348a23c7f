/**
 * The Node producer of seen-worker jobs (docs/wire-format.md): enqueue any job, progress
 * updates one by one or in batches, publish coalesced progress through the same Lua script
 * as the Python producer, read a job's status and result, on both queue layouts. Every value
 * is checked before anything is sent; a refusal is a ValidationError naming the field.
 */
export { type JobResult, type JobStatus, type EnqueueOptions, type WaitOptions, SeenClient } from "./client.js";
export { type Conn, type Reply, type NodeRedisClient, fromNodeRedis } from "./conn.js";
export { ValidationError } from "./errors.js";
export { MAX_ID_LENGTH, checkDownloadId, checkJobId } from "./ids.js";
export { DEFAULT_QUEUE_NAME, MAX_SHARDS, type JobKeys, QueueLayout, crc32, shardOf, tableCrc32 } from "./layout.js";
export {
  DEFAULT_DOWNLOAD_SETTINGS,
  type DownloadKeys,
  type DownloadSettings,
  Outcome,
  Publisher,
  checkDownloadSettings,
  downloadKeys,
  needsDrain,
  newDrainId,
  outcomeName,
  pendingPut,
} from "./publish.js";
export { BATCH_FUNCTION, DRAIN_FUNCTION, MAX_FUNCTION_CHARS, UPDATE_FUNCTION, jobRecord } from "./record.js";
export { PENDING_PUT_SCRIPT_URL, pendingPutScript } from "./script.js";
export { type TraceContext, checkTraceContext } from "./trace.js";
export {
  MAX_BATCH,
  MAX_ERROR_CHARS,
  MAX_INT,
  type NormalizedUpdate,
  type ProgressUpdate,
  STATUSES,
  type Status,
  checkBatch,
  checkUpdate,
} from "./update.js";
