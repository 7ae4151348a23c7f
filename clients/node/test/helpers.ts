import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The repository's root, seen from dist/test/. */
export const REPO = new URL("../../../../", import.meta.url);

/** A shared conformance vector file (tests/conformance/vectors/<name>.json), or null (with a
 * reason) when the package runs outside the repository; with CI=true that is an error. */
export function vectors(name: string): any {
  const dir = process.env.SEEN_CONFORMANCE_VECTORS ?? fileURLToPath(new URL("tests/conformance/vectors/", REPO));
  const path = `${dir}/${name}.json`;
  if (!existsSync(path)) {
    if (process.env.CI === "true") throw new Error(`CI=true and ${path} is missing`);
    return null;
  }
  return JSON.parse(readFileSync(path, "utf8"));
}
