import { defineConfig } from "vitest/config";

// Tests mount real FUSE filesystems and real FAT images: run files one at a time
// (the machine has 2 cores) and give mounts room to breathe.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
