/*
 * Closes descriptors on threads of their own, so the daemon's one JS thread never waits in
 * close(2):
 *   closeLater(fd)   queues fd and returns at once (waits only while MAX_QUEUED are queued)
 *   closeWait()      waits until every queued descriptor is closed; gives the errno and fd
 *                    of the first close that failed since the last wait ([0, -1] if none)
 *   closesPending()  how many are queued or being closed
 *
 * Why: Linux's vfat mounted with `flush` (what the login hook mounts a FAT32 stick with, so that
 * a pulled stick holds what was written) sleeps 100 ms in every close of a file opened for
 * writing, after starting its writeback (fat_file_release). The layer closes a stored file when
 * the user's last descriptor goes (FUSE release, which the kernel sends without waiting for the
 * answer) and a metadata log after each append: on its own thread every such close stalled
 * every other request for 0.1 s (docs/benchmarks.md, "Thirteenth round").
 *
 * A queued descriptor stays open until a closer thread takes it, so its number is not reused
 * meanwhile; the caller must not touch it after closeLater. Closers start as work arrives (up
 * to MAX_CLOSERS), then wait for more for the life of the process, signals blocked.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include "helper_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#define MAX_CLOSERS 16
#define MAX_QUEUED 1024

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued_cv = PTHREAD_COND_INITIALIZER; /* closers wait for work */
static pthread_cond_t closed_cv = PTHREAD_COND_INITIALIZER; /* callers wait for room or the end */
static int queue[MAX_QUEUED]; /* a ring: `count` descriptors from `head` */
static size_t head, count;
static size_t closing; /* taken by a closer, not yet closed */
static size_t closers, idle;
static int first_err, first_fd = -1; /* since the last closeWait */

static void *closer(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (count == 0) {
      idle++;
      pthread_cond_wait(&queued_cv, &mu);
      idle--;
    }
    int fd = queue[head];
    head = (head + 1) % MAX_QUEUED;
    count--;
    closing++;
    pthread_cond_broadcast(&closed_cv); /* room in the queue */
    pthread_mutex_unlock(&mu);
    /* Linux frees the descriptor even when close fails (also on EINTR): never retried */
    int err = close(fd) == 0 ? 0 : errno;
    pthread_mutex_lock(&mu);
    closing--;
    if (err != 0 && err != EINTR && first_err == 0) {
      first_err = err;
      first_fd = fd;
    }
    if (count == 0 && closing == 0) pthread_cond_broadcast(&closed_cv);
  }
  return NULL;
}

/* under mu: one more closer if the queue holds more than the idle ones will take */
static void add_closer_if_needed(void) {
  if (count <= idle || closers >= MAX_CLOSERS) return;
  if (start_helper_thread(closer, 64 * 1024) == 0) closers++; /* it only calls close(2) */
}

static bool int_arg(napi_env env, napi_callback_info info, int32_t *out) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_typeof(env, argv[0], &t) != napi_ok || t != napi_number ||
      napi_get_value_int32(env, argv[0], out) != napi_ok || *out < 0) {
    napi_throw_type_error(env, NULL, "closeLater takes a descriptor (a number >= 0)");
    return false;
  }
  return true;
}

napi_value js_close_later(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int_arg(env, info, &fd)) return NULL;
  pthread_mutex_lock(&mu);
  while (count == MAX_QUEUED) pthread_cond_wait(&closed_cv, &mu);
  queue[(head + count) % MAX_QUEUED] = fd;
  count++;
  add_closer_if_needed();
  if (closers == 0) {
    /* no thread could be started: close it here, as plain close would */
    count--;
    pthread_mutex_unlock(&mu);
    close(fd);
    return NULL;
  }
  pthread_cond_signal(&queued_cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

napi_value js_close_wait(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&mu);
  while (count > 0 || closing > 0) pthread_cond_wait(&closed_cv, &mu);
  int err = first_err, fd = first_fd;
  first_err = 0;
  first_fd = -1;
  pthread_mutex_unlock(&mu);
  napi_value out, e, f;
  if (napi_create_array_with_length(env, 2, &out) != napi_ok || napi_create_int32(env, err, &e) != napi_ok ||
      napi_create_int32(env, fd, &f) != napi_ok || napi_set_element(env, out, 0, e) != napi_ok ||
      napi_set_element(env, out, 1, f) != napi_ok)
    return NULL;
  return out;
}

napi_value js_closes_pending(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&mu);
  size_t n = count + closing;
  pthread_mutex_unlock(&mu);
  napi_value out;
  if (napi_create_uint32(env, (uint32_t)n, &out) != napi_ok) return NULL;
  return out;
}
