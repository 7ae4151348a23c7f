/** A value refused before anything was sent to the store. */
export class ValidationError extends Error {
  /** What was wrong: "job_id", "seq", "function", "traceparent", ...; "" for the value as a whole. */
  readonly field: string;
  /** Position of the update in a batch, or -1. */
  index: number;
  readonly reason: string;

  constructor(field: string, reason: string, index = -1) {
    super("");
    this.name = "ValidationError";
    this.field = field;
    this.reason = reason;
    this.index = index;
    this.message = this.describe();
  }

  /** Re-labels the error with the position of the update in a batch. */
  at(index: number): this {
    this.index = index;
    this.message = this.describe();
    return this;
  }

  private describe(): string {
    let where = this.field;
    if (this.index >= 0) where = `updates[${this.index}]${this.field ? "." + this.field : ""}`;
    return where ? `invalid ${where}: ${this.reason}` : `invalid value: ${this.reason}`;
  }
}
