import { ValidationError } from "./errors.js";

/** The longest id or name the store accepts in a key. */
export const MAX_ID_LENGTH = 128;

const DOWNLOAD_ID = /^[A-Za-z0-9][A-Za-z0-9._@=+-]*$/;
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._@=+/:-]*$/;

function checkId(value: unknown, field: string, pattern: RegExp, allowed: string): string {
  if (typeof value !== "string") throw new ValidationError(field, `must be a string, got ${typeof value}`);
  if (value === "") throw new ValidationError(field, "must not be empty");
  if (value.length > MAX_ID_LENGTH) {
    throw new ValidationError(field, `is longer than ${MAX_ID_LENGTH} characters`);
  }
  // a JavaScript RegExp's $ does not match before a trailing newline without the m flag
  if (!pattern.test(value)) {
    throw new ValidationError(
      field,
      `${JSON.stringify(value)}: only letters, digits and ${allowed}, starting with a letter or digit`,
    );
  }
  return value;
}

/** A download or user id: 1-128 characters of [A-Za-z0-9._@=+-], the first a letter or digit. */
export function checkDownloadId(value: unknown, field = "job_id"): string {
  return checkId(value, field, DOWNLOAD_ID, "._@=+-");
}

/** A queue job id or queue name: as a download id, with ':' and '/' allowed too. */
export function checkJobId(value: unknown, field = "job_id"): string {
  return checkId(value, field, JOB_ID, "._@=+/:-");
}
