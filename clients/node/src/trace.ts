import { ValidationError } from "./errors.js";

/** W3C trace context a job carries to the worker (record field "tc"). */
export interface TraceContext {
  /** "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", version 00, lower-case hex. */
  traceparent?: string;
  /** Optional, needs a traceparent: at most 512 characters, at most 32 key=value members. */
  tracestate?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
const KEY = /^(?:[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** The record's "tc" value, or undefined without a traceparent; throws ValidationError. */
export function checkTraceContext(trace: TraceContext | undefined): TraceContext | undefined {
  const traceparent = trace?.traceparent ?? "";
  const tracestate = trace?.tracestate ?? "";
  if (typeof traceparent !== "string") throw new ValidationError("traceparent", "must be a string");
  if (typeof tracestate !== "string") throw new ValidationError("tracestate", "must be a string");
  if (traceparent === "") {
    if (tracestate !== "") throw new ValidationError("tracestate", "a tracestate needs a traceparent");
    return undefined;
  }
  const match = TRACEPARENT.exec(traceparent);
  if (match === null) {
    throw new ValidationError(
      "traceparent",
      `${JSON.stringify(traceparent.slice(0, 80))} is not 00-<32 hex>-<16 hex>-<2 hex> (lower-case hex)`,
    );
  }
  if (/^0+$/.test(match[1] as string) || /^0+$/.test(match[2] as string)) {
    throw new ValidationError("traceparent", `${traceparent} has an all-zero trace or parent id`);
  }
  if (tracestate === "") return { traceparent };
  if (tracestate.length > 512) throw new ValidationError("tracestate", "is longer than 512 characters");
  let members = 0;
  for (const raw of tracestate.split(",")) {
    const member = raw.replace(/^[ \t]+|[ \t]+$/g, "");
    if (member === "") continue;
    members++;
    const eq = member.indexOf("=");
    if (eq < 0 || !KEY.test(member.slice(0, eq)) || !VALUE.test(member.slice(eq + 1))) {
      throw new ValidationError("tracestate", `member ${JSON.stringify(member.slice(0, 80))} is not key=value`);
    }
  }
  if (members > 32) throw new ValidationError("tracestate", "has more than 32 members");
  return { traceparent, tracestate };
}
