import { ValidationError } from "./errors.js";
import { checkTraceContext, type TraceContext } from "./trace.js";

export const MAX_FUNCTION_CHARS = 256;
export const UPDATE_FUNCTION = "update_progress";
export const BATCH_FUNCTION = "update_progress_batch";
export const DRAIN_FUNCTION = "apply_pending_progress";

function rejectNonFinite(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new ValidationError("args", `${value} is not a JSON number`);
  }
  return value;
}

/**
 * The job record a producer writes under the job key (docs/wire-format.md section 2):
 * {"t":null,"f":fn,"a":args,"k":{},"et":enqueueMs} plus "tc" when a traceparent is given.
 * The text is what the Python producer writes for the same job: compact JSON, fields in this
 * order, every character outside printable ASCII escaped as \uXXXX.
 */
export function jobRecord(fn: string, args: readonly unknown[], enqueueMs: number, trace?: TraceContext): string {
  const chars = typeof fn === "string" ? [...fn].length : 0;
  if (chars < 1 || chars > MAX_FUNCTION_CHARS) {
    throw new ValidationError("function", `must be 1-${MAX_FUNCTION_CHARS} characters, got ${chars}`);
  }
  const tc = checkTraceContext(trace);
  const record: Record<string, unknown> = { t: null, f: fn, a: args, k: {}, et: enqueueMs };
  if (tc !== undefined) record.tc = tc;
  let text: string;
  try {
    text = JSON.stringify(record, rejectNonFinite);
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError("args", (error as Error).message);
  }
  // JSON.stringify escapes control characters and lone surrogates already; the rest of what
  // lies outside printable ASCII (DEL included) is escaped here, one UTF-16 unit at a time
  return text.replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}
