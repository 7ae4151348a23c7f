import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

/** Where the package keeps its copy of cache/scripts/download_pending_put.lua (byte for
 * byte: `make sync-clients` refreshes it and tests fail when the copies differ). */
export const PENDING_PUT_SCRIPT_URL = new URL("../../scripts/download_pending_put.lua", import.meta.url);

let loaded: { source: string; sha: string } | undefined;

/** The Lua source of the coalescing put and its SHA-1 (read on first use). */
export function pendingPutScript(): { source: string; sha: string } {
  if (loaded === undefined) {
    const source = readFileSync(PENDING_PUT_SCRIPT_URL, "utf8");
    loaded = { source, sha: createHash("sha1").update(source, "utf8").digest("hex") };
  }
  return loaded;
}
