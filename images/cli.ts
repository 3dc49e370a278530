#!/usr/bin/env node
// node dist/images/cli.js build [--cache DIR] [--quiet]: builds (or finds in the cache) the lab
// images and prints LabImages as JSON on stdout; progress goes to stderr.
import { buildLabImages } from "./index.js";

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd !== "build") {
    process.stderr.write("usage: node dist/images/cli.js build [--cache DIR] [--quiet]\n");
    return 2;
  }
  let cacheDir: string | undefined;
  let quiet = false;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--cache") cacheDir = rest[++i];
    else if (rest[i] === "--quiet") quiet = true;
    else {
      process.stderr.write(`unknown option ${rest[i]}\n`);
      return 2;
    }
  }
  const t0 = performance.now();
  const images = await buildLabImages({
    ...(cacheDir ? { cacheDir } : {}),
    log: (l) => {
      if (!quiet) process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s ${l}\n`);
    },
  });
  process.stdout.write(JSON.stringify(images, null, 2) + "\n");
  return 0;
}

main(process.argv.slice(2)).then(
  (rc) => process.exit(rc),
  (e: unknown) => {
    process.stderr.write(`lab images: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
