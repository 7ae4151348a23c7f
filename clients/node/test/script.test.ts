import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { it } from "node:test";
import * as zlib from "node:zlib";
import { pendingPutScript, tableCrc32 } from "../src/index.js";
import { REPO } from "./helpers.js";

const ORIGINAL = new URL("cache/scripts/download_pending_put.lua", REPO);

it("the packaged put script is the repository's, byte for byte (make sync-clients)", (t) => {
  if (!existsSync(ORIGINAL)) {
    if (process.env.CI === "true") throw new Error(`CI=true and ${ORIGINAL.pathname} is missing`);
    t.skip("cache/scripts not found: run inside the repository");
    return;
  }
  const { source, sha } = pendingPutScript();
  assert.equal(source, readFileSync(ORIGINAL, "utf8"), "scripts/download_pending_put.lua differs: run `make sync-clients`");
  assert.equal(sha, createHash("sha1").update(readFileSync(ORIGINAL)).digest("hex"));
});

it("the table CRC-32 (Node < 20.15) agrees with zlib's", () => {
  for (const text of ["", "a", "dl-1", "é-1", "x".repeat(1000)]) {
    const bytes = Buffer.from(text, "utf8");
    assert.equal(tableCrc32(bytes), zlib.crc32(bytes) >>> 0, text);
  }
});
