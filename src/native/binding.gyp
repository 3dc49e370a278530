# Builds the libfuse3 low-level addon: build/Release/pershome_fuse.node
#   node-gyp rebuild --directory src/native
# ASan variant (test/native/memory-safety.test.ts): the test copies this file and the C sources to
# .cache/native-asan/ and builds there with PERSHOME_ASAN=1, so the regular build above
# is never clobbered while other tests use it.
{
  "variables": {
    "pershome_asan%": "<!(echo ${PERSHOME_ASAN:-0})"
  },
  "targets": [
    {
      "target_name": "pershome_fuse",
      "sources": ["fuse_ll.c", "fsync_many.c", "closer.c", "prefetch.c", "helper_thread.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["<!@(pkg-config --cflags fuse3)", "-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "conditions": [
        ["pershome_asan==1", {
          "cflags": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
          "ldflags": ["-fsanitize=address"]
        }]
      ]
    }
  ]
}
