/*
 * Reads a folder's metadata ahead on threads of their own, so the daemon's one JS thread finds
 * it in the kernel's caches:
 *   prefetchFolder(path, files, prefix)
 *                                queues a folder and returns at once (dropped when the queue is
 *                                full: it only warms caches); `files`: names in it to read
 *                                first, "/"-separated (its metadata logs), or ""; `prefix`: the
 *                                subfolders' files to read, those whose names start with it
 *   prefetchWait()               forgets what is queued and waits for the folders being read
 *                                (before unmount: no descriptor on the stick stays open)
 *   prefetchStats()              [folders read, entries looked at, bytes read, folders dropped,
 *                                 subfolders listed]
 *
 * Why: the first use of a folder costs the JS thread its listing, its metadata log and an
 * lstat per name it is asked for, each waiting on the stick in turn. `git status` right after
 * a login asks for every file of the repository from several threads at once, and the daemon
 * answered them one wait after another (docs/benchmarks.md, "Seventeenth round"). The layer
 * queues a folder when it first lists it. A prefetcher reads the named files (the log is what
 * the layer reads next), lstats the folder's entries, then lists its subfolders and reads their
 * logs (the layer lists a folder as soon as its name is looked up, for its link count, and
 * reads its log at the first name looked up in it), and drops what it read. Nothing here
 * changes the stick; a call that fails is let be: the JS thread's own call meets the same
 * error and says so.
 *
 * Bounds, per folder queued: MAX_ENTRIES lstats, MAX_SUBDIRS subfolders, MAX_FOLDER_READ bytes
 * read (MAX_READ a file): a stick made to cost reads costs little more. Names are opened
 * relative to the folder with O_NOFOLLOW (and O_NONBLOCK, O_NOCTTY); only regular files are
 * read. The threads run SCHED_BATCH: waking one for a folder must not take the CPU from the JS
 * thread that queued it.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include "helper_thread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_PREFETCHERS 2
#define MAX_QUEUED 256
#define MAX_ENTRIES 4096
#define MAX_SUBDIRS 256
#define MAX_READ (1 << 20)
#define MAX_FOLDER_READ (8 << 20)
#define MAX_FILES_ARG 1024
#define MAX_PREFIX 64

typedef struct {
  char *path;
  char *files;  /* "/"-separated names, or "" */
  char *prefix; /* subfolders' files to read: those whose names start with it ("": none) */
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static job queue[MAX_QUEUED]; /* a ring: `count` jobs from `head` */
static size_t head, count, running, threads, idle;
static double folders, entries, bytes, dropped, listed;

/* reads a regular file through, at most MAX_READ bytes and what is left of *budget */
static void read_through(int dirfd, const char *name, char *buf, size_t cap, size_t *budget) {
  if (*budget == 0) return;
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    size_t got = 0, most = *budget < MAX_READ ? *budget : MAX_READ;
    while (got < most) {
      ssize_t n = read(fd, buf, cap < most - got ? cap : most - got);
      if (n <= 0) break;
      got += (size_t)n;
    }
    *budget -= got;
    pthread_mutex_lock(&mu);
    bytes += (double)got;
    pthread_mutex_unlock(&mu);
  }
  close(fd);
}

/* the layout getdents64 fills in */
struct dirent64_raw {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};

/* A subfolder's whole listing, and its files whose names start with `prefix`. `buf` holds the
 * listing (getdents64: no copy into dirents of our own), `rbuf` what is read. */
static bool list_through(int dirfd, const char *name, const char *prefix, char *buf, size_t cap, char *rbuf,
                         size_t rcap, size_t *budget) {
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  size_t plen = strlen(prefix);
  long n;
  while ((n = syscall(SYS_getdents64, fd, buf, cap)) > 0) {
    for (long at = 0; plen > 0 && at < n;) {
      const struct dirent64_raw *e = (const struct dirent64_raw *)(buf + at);
      if (e->reclen == 0) break;
      at += e->reclen;
      if (e->type != DT_DIR && strncmp(e->name, prefix, plen) == 0) read_through(fd, e->name, rbuf, rcap, budget);
    }
  }
  close(fd);
  return true;
}

static void prefetch_folder(const job *j, char *buf, size_t cap) {
  int dirfd = open(j->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0) return;
  size_t budget = MAX_FOLDER_READ;
  /* 1. the files the layer reads first (names cannot hold "/": it splits them) */
  for (char *name = j->files, *slash; *name != '\0'; name = slash + 1) {
    slash = strchr(name, '/');
    if (slash != NULL) *slash = '\0';
    if (*name != '\0') read_through(dirfd, name, buf, cap, &budget);
    if (slash == NULL) break;
  }
  DIR *d = fdopendir(dirfd);
  if (d == NULL) {
    close(dirfd);
    return;
  }
  /* 2. every entry's lstat; 3. the subfolders' listings, in a second pass over the (cached)
   * listing: the layer asks for a folder's own entries before any of its subfolders' */
  size_t seen = 0, subdirs = 0;
  struct dirent *e;
  while (seen < MAX_ENTRIES && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    seen++;
    struct stat st;
    fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW);
  }
  rewinddir(d);
  for (size_t n = 0; n < MAX_ENTRIES && subdirs < MAX_SUBDIRS && (e = readdir(d)) != NULL; n++) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    bool dir = e->d_type == DT_DIR ||
               (e->d_type == DT_UNKNOWN && fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISDIR(st.st_mode));
    if (dir && list_through(dirfd, e->d_name, j->prefix, buf, cap / 2, buf + cap / 2, cap / 2, &budget)) subdirs++;
  }
  closedir(d);
  pthread_mutex_lock(&mu);
  folders++;
  entries += (double)seen;
  listed += (double)subdirs;
  pthread_mutex_unlock(&mu);
}

static void *prefetcher(void *arg) {
  (void)arg;
  struct sched_param none = {0};
  sched_setscheduler(0, SCHED_BATCH, &none); /* this thread only; best effort */
  size_t cap = 64 * 1024;
  char *buf = malloc(cap);
  pthread_mutex_lock(&mu);
  for (;;) {
    while (count == 0) {
      idle++;
      pthread_cond_wait(&queued_cv, &mu);
      idle--;
    }
    job j = queue[head];
    head = (head + 1) % MAX_QUEUED;
    count--;
    running++;
    pthread_mutex_unlock(&mu);
    if (buf != NULL) prefetch_folder(&j, buf, cap);
    free(j.path);
    free(j.files);
    free(j.prefix);
    pthread_mutex_lock(&mu);
    running--;
    if (count == 0 && running == 0) pthread_cond_broadcast(&done_cv);
  }
  return NULL;
}

/* under mu: one more prefetcher if the queue holds more than the idle ones will take */
static void add_prefetcher_if_needed(void) {
  if (count <= idle || threads >= MAX_PREFETCHERS) return;
  if (start_helper_thread(prefetcher, 128 * 1024) == 0) threads++;
}

static const char *const USAGE =
    "prefetchFolder takes a folder's path, its files to read first, and its subfolders' name prefix (byte strings)";

/* a JS string's latin1 bytes (the layer's byte-string paths), malloc'd; NULL after a throw */
static char *latin1_arg(napi_env env, napi_value v, size_t min, size_t max) {
  size_t len;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok || len < min || len > max) {
    napi_throw_type_error(env, NULL, USAGE);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (s == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_get_value_string_latin1(env, v, s, len + 1, &len);
  if (strlen(s) != len) { /* a NUL inside: not a path */
    free(s);
    napi_throw_type_error(env, NULL, "prefetchFolder: a path cannot hold a NUL byte");
    return NULL;
  }
  return s;
}

napi_value js_prefetch_folder(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, NULL, USAGE);
    return NULL;
  }
  job j = {NULL, NULL, NULL};
  if ((j.path = latin1_arg(env, argv[0], 1, 65536)) == NULL ||
      (j.files = latin1_arg(env, argv[1], 0, MAX_FILES_ARG)) == NULL ||
      (j.prefix = latin1_arg(env, argv[2], 0, MAX_PREFIX)) == NULL) {
    free(j.path);
    free(j.files);
    return NULL;
  }
  pthread_mutex_lock(&mu);
  bool queued = false, wake = false;
  if (count == MAX_QUEUED) {
    dropped++;
  } else {
    queue[(head + count) % MAX_QUEUED] = j;
    count++;
    add_prefetcher_if_needed();
    if (threads == 0) count--; /* no thread could be started: prefetching is only ever a help */
    else queued = true, wake = idle > 0;
  }
  pthread_mutex_unlock(&mu);
  /* signalled after the unlock, and only if a thread waits: the woken thread does not have to
   * wait for the mutex, and a busy one takes the job when it is done */
  if (wake) pthread_cond_signal(&queued_cv);
  if (!queued) {
    free(j.path);
    free(j.files);
    free(j.prefix);
  }
  return NULL;
}

napi_value js_prefetch_wait(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  pthread_mutex_lock(&mu);
  while (count > 0) {
    free(queue[head].path);
    free(queue[head].files);
    free(queue[head].prefix);
    head = (head + 1) % MAX_QUEUED;
    count--;
  }
  while (running > 0) pthread_cond_wait(&done_cv, &mu);
  pthread_mutex_unlock(&mu);
  return NULL;
}

napi_value js_prefetch_stats(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&mu);
  double v[5] = {folders, entries, bytes, dropped, listed};
  pthread_mutex_unlock(&mu);
  napi_value out, x;
  if (napi_create_array_with_length(env, 5, &out) != napi_ok) return NULL;
  for (uint32_t i = 0; i < 5; i++)
    if (napi_create_double(env, v[i], &x) != napi_ok || napi_set_element(env, out, i, x) != napi_ok) return NULL;
  return out;
}
