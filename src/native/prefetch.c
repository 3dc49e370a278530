/*
 * Reads a folder's metadata ahead on threads of their own, so the daemon's one JS thread finds
 * it in the kernel's caches:
 *   prefetchFolder(path, prefix)  queues a folder and returns at once (dropped when the queue
 *                                 is full: it only warms caches)
 *   prefetchWait()                forgets what is queued and waits for the folders being read
 *                                 (before unmount: no descriptor on the stick stays open)
 *   prefetchStats()               [folders read, entries looked at, bytes read, folders dropped]
 *
 * Why: the first use of a folder costs the JS thread its listing, its metadata log and an
 * lstat per name it is asked for, each waiting on the stick in turn. `git status` right after
 * a login asks for every file of the repository from several threads at once, and the daemon
 * answered them one wait after another (docs/benchmarks.md, "Seventeenth round"). The layer
 * queues a folder when it first lists it; a prefetcher lists it again (now cached), lstats its
 * entries and reads the files whose names start with `prefix` (the logs), and drops what it
 * read. Nothing here changes the stick; a read that fails is ignored: the JS thread's own
 * call meets the same error and says so.
 *
 * Bounds: at most MAX_ENTRIES lstats per folder and MAX_READ bytes per log; names are opened
 * relative to the folder with O_NOFOLLOW and O_NONBLOCK, and only regular files are read.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PREFETCHERS 2
#define MAX_QUEUED 256
#define MAX_ENTRIES 4096
#define MAX_READ (4 << 20)
#define MAX_PREFIX 64

typedef struct {
  char *path;
  char prefix[MAX_PREFIX];
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static job queue[MAX_QUEUED]; /* a ring: `count` jobs from `head` */
static size_t head, count, running, threads, idle;
static double folders, entries, bytes, dropped;

static void read_through(int dirfd, const char *name, char *buf, size_t cap) {
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    size_t got = 0;
    while (got < MAX_READ) {
      ssize_t n = read(fd, buf, cap);
      if (n <= 0) break;
      got += (size_t)n;
    }
    pthread_mutex_lock(&mu);
    bytes += (double)got;
    pthread_mutex_unlock(&mu);
  }
  close(fd);
}

static void prefetch_folder(const job *j, char *buf, size_t cap) {
  int dirfd = open(j->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0) return;
  DIR *d = fdopendir(dirfd);
  if (d == NULL) {
    close(dirfd);
    return;
  }
  size_t plen = strlen(j->prefix), seen = 0;
  struct dirent *e;
  while (seen < MAX_ENTRIES && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    seen++;
    if (plen > 0 && strncmp(e->d_name, j->prefix, plen) == 0) {
      read_through(dirfd, e->d_name, buf, cap);
    } else {
      struct stat st;
      fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW);
    }
  }
  closedir(d);
  pthread_mutex_lock(&mu);
  folders++;
  entries += (double)seen;
  pthread_mutex_unlock(&mu);
}

static void *prefetcher(void *arg) {
  (void)arg;
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
    pthread_mutex_lock(&mu);
    running--;
    if (count == 0 && running == 0) pthread_cond_broadcast(&done_cv);
  }
  return NULL;
}

/* under mu: one more prefetcher if the queue holds more than the idle ones will take */
static void add_prefetcher_if_needed(void) {
  if (count <= idle || threads >= MAX_PREFETCHERS) return;
  pthread_attr_t attr;
  sigset_t all, old;
  pthread_t t;
  if (pthread_attr_init(&attr) != 0) return;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  /* signals are Node's business: the new thread starts with all of them blocked */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  if (pthread_create(&t, &attr, prefetcher, NULL) == 0) threads++;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
}

/* a JS string's latin1 bytes (the layer's byte-string paths), malloc'd; NULL after a throw */
static char *latin1_arg(napi_env env, napi_value v, size_t max) {
  size_t len;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok || len == 0 || len > max) {
    napi_throw_type_error(env, NULL, "prefetchFolder takes a path and a name prefix (byte strings)");
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
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "prefetchFolder takes a path and a name prefix (byte strings)");
    return NULL;
  }
  char *path = latin1_arg(env, argv[0], 65536);
  if (path == NULL) return NULL;
  char *prefix = latin1_arg(env, argv[1], MAX_PREFIX - 1);
  if (prefix == NULL) {
    free(path);
    return NULL;
  }
  pthread_mutex_lock(&mu);
  if (count == MAX_QUEUED) {
    dropped++;
    pthread_mutex_unlock(&mu);
    free(path);
    free(prefix);
    return NULL;
  }
  job *j = &queue[(head + count) % MAX_QUEUED];
  j->path = path;
  strcpy(j->prefix, prefix);
  free(prefix);
  count++;
  add_prefetcher_if_needed();
  if (threads == 0) { /* no thread could be started: prefetching is only ever a help */
    count--;
    free(path);
  } else {
    pthread_cond_signal(&queued_cv);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

napi_value js_prefetch_wait(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  pthread_mutex_lock(&mu);
  while (count > 0) {
    free(queue[head].path);
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
  double v[4] = {folders, entries, bytes, dropped};
  pthread_mutex_unlock(&mu);
  napi_value out, x;
  if (napi_create_array_with_length(env, 4, &out) != napi_ok) return NULL;
  for (uint32_t i = 0; i < 4; i++)
    if (napi_create_double(env, v[i], &x) != napi_ok || napi_set_element(env, out, i, x) != napi_ok) return NULL;
  return out;
}
