import { createRequire } from "node:module";

/** pershome's version, from package.json (found from the source tree or from dist/). */
export function pershomeVersion(): string {
  const require = createRequire(import.meta.url);
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      return (require(rel) as { version: string }).version;
    } catch {
      // try the next layout
    }
  }
  return "unknown";
}
