/*
 * pershome_fuse: libfuse3 low-level (inode) API as a Node-API addon.
 *
 * Transport and marshalling only; every filesystem decision lives in TypeScript.
 * Everything runs on the JS thread: libuv polls the non-blocking /dev/fuse fd, we read
 * and dispatch requests in the poll callback, and each low-level callback calls the
 * JS op synchronously. Replies may come then or later. See docs/native-addon.md.
 */
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NAME_CAP 1025 /* FUSE_NAME_MAX (1024) + NUL */
#define BATCH 64      /* requests per poll wakeup, so timers and I/O get a turn */

enum { OP_INIT, OP_DESTROY, OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK,
       OP_MKNOD, OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN,
       OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR,
       OP_READDIRPLUS, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS, OP_SETXATTR, OP_GETXATTR,
       OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE, OP_FALLOCATE, OP_COUNT };
static const char *const op_names[OP_COUNT] = {
    "init", "destroy", "lookup", "forget", "getattr", "setattr", "readlink", "mknod",
    "mkdir", "unlink", "rmdir", "symlink", "rename", "link", "open", "read", "write",
    "flush", "release", "fsync", "opendir", "readdir", "readdirplus", "releasedir",
    "fsyncdir", "statfs", "setxattr", "getxattr", "listxattr", "removexattr", "create",
    "fallocate"};

enum { MOUNTED, ENDING, ENDED };
typedef struct session session;

/* What a JS FuseReq wraps. `s` is set only while the request is outstanding on a live
 * session; `replied` guards against a second reply (libfuse frees req on the first). */
typedef struct reqw {
  fuse_req_t req;
  session *s;
  struct reqw *prev, *next;
  size_t size; /* size the kernel asked for (read/readdir/xattr), 0 if none */
  int replied;
  uint32_t ctx[4]; /* uid, gid, pid, umask: read lazily by FuseReq's getters */
} reqw;

struct session {
  napi_env env;
  struct fuse_session *se;
  uv_poll_t *poll;
  struct fuse_buf buf; /* receive buffer, reused for every request */
  napi_ref self, ops, on_exit, fn[OP_COUNT];
  napi_async_context actx;
  reqw *reqs; /* outstanding requests */
  session *next_live;
  unsigned max_write, max_read;
  int readdirplus, writeback, atomic_trunc;
  int state, dispatching, in_cb, orphan, no_js;
  char *end_msg; /* why the session ended, if by error */
  char xattr_prefix[32]; /* getxattr of other names: EOPNOTSUPP here, no JS (empty: all to JS) */
  double opcount[64]; /* requests received, by kernel opcode (requestCounts()) */
  /* polling before sleeping (see poll_briefly): the longest window, the current one, and
   * when /dev/fuse last ran dry (0: not sleeping after a failed poll) */
  int64_t poll_max_ns, poll_ns, dry_since;
  /* after a poll lost the CPU to another task: no polling before poll_off_until, and how long
   * the next such pause lasts (doubling while it keeps happening) */
  int64_t poll_off_until, backoff_ns;
  double polls, caught, polled_ns, sleeps, lost; /* pollStats() */
};

/* ---- small helpers ---- */

#define CHECK(call) do { if ((call) != napi_ok) return NULL; } while (0)
#define THROW(...) do { fail(env, __VA_ARGS__); return NULL; } while (0)
#define ARGS(n) napi_value argv[n]; size_t argc = n; \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

static napi_value num(napi_env env, double d) { napi_value v; napi_create_double(env, d, &v); return v; }
static napi_value u32(napi_env env, uint32_t u) { napi_value v; napi_create_uint32(env, u, &v); return v; }
static napi_value boolean(napi_env env, int b) { napi_value v; napi_get_boolean(env, b, &v); return v; }
static napi_value undef(napi_env env) { napi_value v; napi_get_undefined(env, &v); return v; }
static napi_value bytes(napi_env env, const void *p, size_t n) {
  napi_value v; void *d; napi_create_buffer_copy(env, n, p, &d, &v); return v;
}
static napi_value name_buf(napi_env env, const char *s) { return bytes(env, s, strlen(s)); }
/* An entry's name as a byte string (one char per byte, latin1): what the layer keys names by,
 * made in one call, where a Buffer costs an allocation here and a decode in JS. */
static napi_value name_str(napi_env env, const char *s) {
  napi_value v; napi_create_string_latin1(env, s, strlen(s), &v); return v;
}

static int fail(napi_env env, const char *fmt, ...) {
  char msg[256]; va_list ap; va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap);
  napi_throw_type_error(env, NULL, msg);
  return 0;
}

/* Property names used on every request, created once per env: napi_get_named_property
 * would re-intern the C string on each access, a measurable cost at ~40 per request. */
#define KEYS(X) X(ino) X(mode) X(nlink) X(uid) X(gid) X(rdev) X(size) X(blocks) X(blksize) \
  X(atimeSec) X(atimeNsec) X(mtimeSec) X(mtimeNsec) X(ctimeSec) X(ctimeNsec) X(generation) \
  X(attr) X(attrTimeout) X(entryTimeout) X(fh) X(flags) X(writepage) X(lockOwner) X(flush) \
  X(directIo) X(keepCache) X(nonseekable) X(name) X(off) X(entry)
#define K_ENUM(k) K_##k,
#define K_NAME(k) #k,
enum { KEYS(K_ENUM) K_COUNT };
static const char *const key_names[K_COUNT] = {KEYS(K_NAME)};

/* The flat reply layout (index.ts packs it): an entry/attr/open reply is written by JS into
 * one Float64Array the addon made, so the reply reads plain memory instead of ~20 N-API
 * property lookups. Indices, in struct stat order first: */
enum { F_INO, F_MODE, F_NLINK, F_UID, F_GID, F_RDEV, F_SIZE, F_BLOCKS, F_BLKSIZE, F_ATIME,
       F_ATIME_NS, F_MTIME, F_MTIME_NS, F_CTIME, F_CTIME_NS, /* 15 attr fields, then */
       F_ENTRY_INO, F_GENERATION, F_ATTR_TIMEOUT, F_ENTRY_TIMEOUT, F_FH, F_OPEN_FLAGS, F_COUNT };
enum { OPEN_DIRECT_IO = 1, OPEN_KEEP_CACHE = 2, OPEN_NONSEEKABLE = 4 }; /* F_OPEN_FLAGS bits */

/* Per-env instance data. Node 20 only references objects, so the keys live in an array. */
typedef struct { napi_ref keys, req_class, flat_ref, fi_make; double *flat; } addon;

static napi_value keys(napi_env env) {
  addon *a; napi_value arr;
  napi_get_instance_data(env, (void **)&a);
  napi_get_reference_value(env, a->keys, &arr);
  return arr;
}
static napi_value key(napi_env env, int k) {
  napi_value v; napi_get_element(env, keys(env), k, &v); return v;
}

/* Reads obj[keys[k]] as a number; throws a TypeError naming the field if it is not one. */
static int get_num_k(napi_env env, napi_value obj, napi_value ks, int k, double *out) {
  napi_value name, v;
  if (napi_get_element(env, ks, k, &name) != napi_ok || napi_get_property(env, obj, name, &v) != napi_ok) return 0;
  if (napi_get_value_double(env, v, out) != napi_ok) return fail(env, "%s must be a number", key_names[k]);
  return 1;
}
static int get_num(napi_env env, napi_value obj, int k, double *out) { return get_num_k(env, obj, keys(env), k, out); }
static int get_num_named(napi_env env, napi_value obj, const char *k, double *out) {
  napi_value v;
  if (napi_get_named_property(env, obj, k, &v) != napi_ok) return 0;
  if (napi_get_value_double(env, v, out) != napi_ok) return fail(env, "%s must be a number", k);
  return 1;
}
static int get_opt(napi_env env, napi_value obj, const char *key, napi_value *out) {
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return 0;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}

/* Raw bytes of a Buffer/Uint8Array (or a string, as UTF-8, for convenience) copied to a
 * NUL-terminated name; names with a NUL inside cannot exist on Linux. */
static int get_name(napi_env env, napi_value v, char *out, size_t cap, const char *what) {
  void *d; size_t n; napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_string) {
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok || n >= cap)
      return fail(env, "%s too long", what);
    napi_get_value_string_utf8(env, v, out, cap, &n);
  } else {
    if (napi_get_buffer_info(env, v, &d, &n) != napi_ok) return fail(env, "%s must be a Buffer", what);
    if (n >= cap) return fail(env, "%s too long", what);
    memcpy(out, d, n); out[n] = 0;
  }
  if (strlen(out) != n) return fail(env, "%s contains a NUL byte", what);
  return 1;
}

/* Prints a pending JS exception (with stack) and clears it; copies the text to msg. */
static void log_exception(napi_env env, const char *what, char *msg, size_t cap) {
  napi_value exc, str = NULL, stack; napi_valuetype t;
  char buf[2048] = "(unprintable exception)";
  napi_get_and_clear_last_exception(env, &exc);
  napi_typeof(env, exc, &t);
  if (t == napi_object && napi_get_named_property(env, exc, "stack", &stack) == napi_ok &&
      napi_typeof(env, stack, &t) == napi_ok && t == napi_string) str = stack;
  else if (napi_coerce_to_string(env, exc, &str) != napi_ok) { napi_get_and_clear_last_exception(env, &exc); str = NULL; }
  if (str) napi_get_value_string_utf8(env, str, buf, sizeof buf, NULL);
  fprintf(stderr, "pershome_fuse: %s threw: %s\n", what, buf);
  if (msg) snprintf(msg, cap, "%s threw: %s", what, buf);
}

/* ---- struct <-> JS conversions ---- */

#define PROP(k, v) {k, NULL, NULL, NULL, NULL, v, napi_default_jsproperty, NULL}

/* Attr <-> struct stat; the 15 Attr keys are K_ino..K_ctimeNsec in struct order. */
static napi_value attr_obj(napi_env env, const struct stat *st) {
  double v[15] = {st->st_ino, st->st_mode, st->st_nlink, st->st_uid, st->st_gid, st->st_rdev,
      st->st_size, st->st_blocks, st->st_blksize, st->st_atim.tv_sec, st->st_atim.tv_nsec,
      st->st_mtim.tv_sec, st->st_mtim.tv_nsec, st->st_ctim.tv_sec, st->st_ctim.tv_nsec};
  napi_value o, ks = keys(env), k; napi_create_object(env, &o);
  for (int i = 0; i < 15; i++) {
    napi_get_element(env, ks, K_ino + i, &k);
    napi_set_property(env, o, k, num(env, v[i]));
  }
  return o;
}

static int to_stat(napi_env env, napi_value o, struct stat *st) {
  double v[15]; napi_valuetype t; napi_value ks = keys(env);
  if (napi_typeof(env, o, &t) != napi_ok || t != napi_object) return fail(env, "attr must be an object");
  for (int i = 0; i < 15; i++) if (!get_num_k(env, o, ks, K_ino + i, &v[i])) return 0;
  memset(st, 0, sizeof *st);
  st->st_ino = v[0]; st->st_mode = v[1]; st->st_nlink = v[2]; st->st_uid = v[3];
  st->st_gid = v[4]; st->st_rdev = v[5]; st->st_size = v[6]; st->st_blocks = v[7];
  st->st_blksize = v[8];
  st->st_atim.tv_sec = v[9]; st->st_atim.tv_nsec = v[10];
  st->st_mtim.tv_sec = v[11]; st->st_mtim.tv_nsec = v[12];
  st->st_ctim.tv_sec = v[13]; st->st_ctim.tv_nsec = v[14];
  return 1;
}

static int to_entry(napi_env env, napi_value o, struct fuse_entry_param *e) {
  double ino, gen; napi_value attr; napi_valuetype t;
  if (napi_typeof(env, o, &t) != napi_ok || t != napi_object) return fail(env, "entry must be an object");
  memset(e, 0, sizeof *e);
  if (!get_num(env, o, K_ino, &ino) || !get_num(env, o, K_generation, &gen) ||
      !get_num(env, o, K_attrTimeout, &e->attr_timeout) ||
      !get_num(env, o, K_entryTimeout, &e->entry_timeout) ||
      napi_get_property(env, o, key(env, K_attr), &attr) != napi_ok || !to_stat(env, attr, &e->attr))
    return 0;
  e->ino = ino; e->generation = gen;
  return 1;
}

static int get_flag(napi_env env, napi_value o, int k) {
  napi_value v; bool b = false;
  napi_get_property(env, o, key(env, k), &v);
  napi_coerce_to_bool(env, v, &v);
  napi_get_value_bool(env, v, &b);
  return b;
}
static int to_open(napi_env env, napi_value o, struct fuse_file_info *fi) {
  double fh;
  memset(fi, 0, sizeof *fi);
  if (!get_num(env, o, K_fh, &fh)) return 0;
  fi->fh = fh;
  fi->direct_io = get_flag(env, o, K_directIo);
  fi->keep_cache = get_flag(env, o, K_keepCache);
  fi->nonseekable = get_flag(env, o, K_nonseekable);
  return 1;
}

/* The same three replies' arguments from the flat array (see F_*). */
static double *flat(napi_env env) {
  addon *a; napi_get_instance_data(env, (void **)&a); return a->flat;
}
static void flat_stat(const double *f, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = f[F_INO]; st->st_mode = f[F_MODE]; st->st_nlink = f[F_NLINK]; st->st_uid = f[F_UID];
  st->st_gid = f[F_GID]; st->st_rdev = f[F_RDEV]; st->st_size = f[F_SIZE]; st->st_blocks = f[F_BLOCKS];
  st->st_blksize = f[F_BLKSIZE];
  st->st_atim.tv_sec = f[F_ATIME]; st->st_atim.tv_nsec = f[F_ATIME_NS];
  st->st_mtim.tv_sec = f[F_MTIME]; st->st_mtim.tv_nsec = f[F_MTIME_NS];
  st->st_ctim.tv_sec = f[F_CTIME]; st->st_ctim.tv_nsec = f[F_CTIME_NS];
}
static void flat_entry(const double *f, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  e->ino = f[F_ENTRY_INO]; e->generation = f[F_GENERATION];
  e->attr_timeout = f[F_ATTR_TIMEOUT]; e->entry_timeout = f[F_ENTRY_TIMEOUT];
  flat_stat(f, &e->attr);
}
static void flat_open(const double *f, struct fuse_file_info *fi) {
  int b = (int)f[F_OPEN_FLAGS];
  memset(fi, 0, sizeof *fi);
  fi->fh = f[F_FH];
  fi->direct_io = !!(b & OPEN_DIRECT_IO);
  fi->keep_cache = !!(b & OPEN_KEEP_CACHE);
  fi->nonseekable = !!(b & OPEN_NONSEEKABLE);
}

/* FileInfo objects come from a small JS function (FI_MAKE, made once at load): its object
 * literal has its final shape at once, where five napi_set_property calls each took the
 * runtime's slow path (~4 % of the daemon's samples in a perf record of creates: every create,
 * write and release carries one). */
#define FI_MAKE "(function (fh, flags, writepage, lockOwner, flush) {" \
  " return { fh, flags, writepage, lockOwner, flush }; })"
static napi_value fi_obj(napi_env env, const struct fuse_file_info *fi) {
  napi_value o, lo, fn, recv; addon *a;
  napi_create_bigint_uint64(env, fi->lock_owner, &lo);
  napi_value v[5] = {num(env, fi->fh), num(env, fi->flags), boolean(env, fi->writepage), lo,
                     boolean(env, fi->flush)};
  napi_get_instance_data(env, (void **)&a);
  napi_get_reference_value(env, a->fi_make, &fn);
  napi_get_undefined(env, &recv);
  /* fails only with an exception pending, which then fails the op's call as well */
  if (napi_call_function(env, recv, fn, 5, v, &o) != napi_ok) o = recv;
  return o;
}

/* ---- requests ---- */

static void unlink_req(reqw *w) {
  if (w->prev) w->prev->next = w->next; else w->s->reqs = w->next;
  if (w->next) w->next->prev = w->prev;
  w->s = NULL; w->prev = w->next = NULL;
}

/* GC'd without an answer: answer EIO so the calling process does not hang. */
static void req_finalize(napi_env env, void *data, void *hint) {
  reqw *w = data; (void)env; (void)hint;
  if (w->s && !w->replied) { unlink_req(w); fuse_reply_err(w->req, EIO); }
  free(w);
}

/* Unwraps a FuseReq for a reply; throws if it was already answered. */
static reqw *get_req(napi_env env, napi_value v) {
  reqw *w;
  if (napi_unwrap(env, v, (void **)&w) != napi_ok || !w) THROW("not a FuseReq");
  if (w->replied) { napi_throw_error(env, "EALREADY", "FUSE request already replied"); return NULL; }
  return w;
}

/* Marks w answered; returns the libfuse request to reply to, or NULL when the session
 * has ended (then there is nobody to answer and the reply is silently dropped). */
static fuse_req_t finish(reqw *w) {
  fuse_req_t r = w->s ? w->req : NULL;
  w->replied = 1;
  if (w->s) unlink_req(w);
  w->req = NULL;
  return r;
}

/* Calls ops[op](...argv) with `this` = ops; on a throw logs it and returns 0. */
static int call_js(session *s, int op, size_t argc, napi_value *argv, char *msg, size_t cap) {
  napi_env env = s->env; napi_value fn, recv, res;
  if (!s->fn[op]) return 1;
  napi_get_reference_value(env, s->fn[op], &fn);
  napi_get_reference_value(env, s->ops, &recv);
  if (napi_call_function(env, recv, fn, argc, argv, &res) == napi_ok) return 1;
  log_exception(env, op_names[op], msg, cap);
  return 0;
}

/* FuseReq: a class whose uid/gid/pid/umask are prototype getters, so making one per
 * request costs no property stores. */
static napi_value req_ctor(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  return self;
}
static napi_value req_get(napi_env env, napi_callback_info info) {
  napi_value self; void *which; reqw *w;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, &which));
  if (napi_unwrap(env, self, (void **)&w) != napi_ok) return NULL;
  return u32(env, w->ctx[(intptr_t)which]);
}

/* Wraps req into a JS FuseReq (argv[0]) and calls the op; never leaves req unanswered. */
static void dispatch(fuse_req_t req, int op, size_t argc, napi_value *argv, size_t size) {
  session *s = fuse_req_userdata(req);
  napi_env env = s->env; napi_value obj, cls; addon *a;
  const struct fuse_ctx *c = fuse_req_ctx(req);
  reqw *w = calloc(1, sizeof *w);
  if (!w) { fuse_reply_err(req, ENOMEM); return; }
  w->req = req; w->s = s; w->size = size;
  w->ctx[0] = c->uid; w->ctx[1] = c->gid; w->ctx[2] = c->pid; w->ctx[3] = c->umask;
  w->next = s->reqs; if (s->reqs) s->reqs->prev = w; s->reqs = w;
  napi_get_instance_data(env, (void **)&a);
  napi_get_reference_value(env, a->req_class, &cls);
  if (napi_new_instance(env, cls, 0, NULL, &obj) != napi_ok ||
      napi_wrap(env, obj, w, req_finalize, NULL, NULL) != napi_ok) {
    napi_value e; napi_get_and_clear_last_exception(env, &e);
    unlink_req(w); free(w); fuse_reply_err(req, EIO); return;
  }
  argv[0] = obj;
  if (!call_js(s, op, argc, argv, NULL, 0) && !w->replied) {
    fuse_req_t r = finish(w);
    if (r) fuse_reply_err(r, EIO);
  }
}

/* ---- low-level callbacks: marshal arguments, then dispatch ---- */

#define SESSION session *s = fuse_req_userdata(req); napi_env env = s->env
#define INO(i) num(env, (double)(i))
#define NAME(n) name_str(env, n) /* entry names */
#define BYTES(n) name_buf(env, n) /* symlink targets, xattr names */
#define FI(fi) fi_obj(env, fi)
#define DISPATCH(op, size, ...) do { napi_value a[] = {NULL, __VA_ARGS__}; \
    dispatch(req, op, sizeof a / sizeof a[0], a, size); } while (0)
/* op(req, ino, fi) and op(req, parent, name) share a shape: */
#define LL_FI(f, OP) static void ll_##f(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) \
  { SESSION; DISPATCH(OP, 0, INO(ino), FI(fi)); }
#define LL_NAME(f, OP) static void ll_##f(fuse_req_t req, fuse_ino_t p, const char *name) \
  { SESSION; DISPATCH(OP, 0, INO(p), NAME(name)); }
static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  SESSION; DISPATCH(OP_REMOVEXATTR, 0, INO(ino), BYTES(name));
}
LL_FI(open, OP_OPEN) LL_FI(flush, OP_FLUSH) LL_FI(release, OP_RELEASE)
LL_FI(opendir, OP_OPENDIR) LL_FI(releasedir, OP_RELEASEDIR)
LL_NAME(lookup, OP_LOOKUP) LL_NAME(unlink, OP_UNLINK) LL_NAME(rmdir, OP_RMDIR)

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  SESSION; napi_value a[] = {INO(ino), num(env, n)};
  call_js(s, OP_FORGET, 2, a, NULL, 0);
  fuse_reply_none(req);
}
static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f) {
  SESSION;
  for (size_t i = 0; i < count; i++) {
    napi_handle_scope hs; napi_open_handle_scope(env, &hs);
    napi_value a[] = {INO(f[i].ino), num(env, f[i].nlookup)};
    call_js(s, OP_FORGET, 2, a, NULL, 0);
    napi_close_handle_scope(env, hs);
  }
  fuse_reply_none(req);
}
static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_GETATTR, 0, INO(ino), fi ? num(env, fi->fh) : undef(env));
}
static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  SESSION; attr->st_ino = ino;
  DISPATCH(OP_SETATTR, 0, INO(ino), attr_obj(env, attr), num(env, to_set), fi ? num(env, fi->fh) : undef(env));
}
static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { SESSION; DISPATCH(OP_READLINK, 0, INO(ino)); }
static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { SESSION; DISPATCH(OP_STATFS, 0, INO(ino)); }
static void ll_mknod(fuse_req_t req, fuse_ino_t p, const char *name, mode_t mode, dev_t rdev) {
  SESSION; DISPATCH(OP_MKNOD, 0, INO(p), NAME(name), u32(env, mode), num(env, rdev));
}
static void ll_mkdir(fuse_req_t req, fuse_ino_t p, const char *name, mode_t mode) {
  SESSION; DISPATCH(OP_MKDIR, 0, INO(p), NAME(name), u32(env, mode));
}
static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t p, const char *name) {
  SESSION; DISPATCH(OP_SYMLINK, 0, BYTES(link), INO(p), NAME(name));
}
static void ll_rename(fuse_req_t req, fuse_ino_t p, const char *name, fuse_ino_t np, const char *nname,
                      unsigned flags) {
  SESSION; DISPATCH(OP_RENAME, 0, INO(p), NAME(name), INO(np), NAME(nname), u32(env, flags));
}
static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nname) {
  SESSION; DISPATCH(OP_LINK, 0, INO(ino), INO(np), NAME(nname));
}
static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_READ, size, INO(ino), num(env, size), num(env, off), FI(fi));
}
/* buf points into the receive buffer, which the next request overwrites: copy it. */
static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_WRITE, 0, INO(ino), bytes(env, buf, size), num(env, off), FI(fi));
}
static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_FSYNC, 0, INO(ino), boolean(env, datasync), FI(fi));
}
static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_FSYNCDIR, 0, INO(ino), boolean(env, datasync), FI(fi));
}
static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_READDIR, size, INO(ino), num(env, size), num(env, off), FI(fi));
}
static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_READDIRPLUS, size, INO(ino), num(env, size), num(env, off), FI(fi));
}
static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                        int flags) {
  SESSION; DISPATCH(OP_SETXATTR, 0, INO(ino), BYTES(name), bytes(env, value, size), num(env, flags));
}
static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  SESSION;
  /* The kernel asks for security.capability before every write (and ls -l for ACLs and
   * labels): names outside the one namespace JS serves are answered without a JS call, with
   * what the VFS answers for a namespace without a handler (ls then stops asking). */
  if (s->xattr_prefix[0] && strncmp(name, s->xattr_prefix, strlen(s->xattr_prefix)) != 0) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  DISPATCH(OP_GETXATTR, size, INO(ino), BYTES(name), num(env, size));
}
static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  SESSION; DISPATCH(OP_LISTXATTR, size, INO(ino), num(env, size));
}
static void ll_create(fuse_req_t req, fuse_ino_t p, const char *name, mode_t mode, struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_CREATE, 0, INO(p), NAME(name), u32(env, mode), FI(fi));
}
static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi) {
  SESSION; DISPATCH(OP_FALLOCATE, 0, INO(ino), num(env, mode), num(env, off), num(env, len), FI(fi));
}

/* INIT: apply InitOptions to the connection, then tell JS what was negotiated. */
static void ll_init(void *userdata, struct fuse_conn_info *c) {
  session *s = userdata; napi_env env = s->env; napi_value info;
  char msg[512];
  /* libfuse sized its receive buffer for conn->max_write already; never exceed it. */
  if (s->max_write < c->max_write) c->max_write = s->max_write;
  c->max_read = s->max_read; /* must equal the max_read= mount option we passed */
  if (c->max_readahead > s->max_read) c->max_readahead = s->max_read; /* kernel only lets us lower it */
  c->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_WRITEBACK_CACHE |
               FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV);
  /* READDIRPLUS without AUTO: every listing is a readdirplus, one round trip per batch. */
  if (s->readdirplus && s->fn[OP_READDIRPLUS]) c->want |= c->capable & FUSE_CAP_READDIRPLUS;
  if (s->writeback) c->want |= c->capable & FUSE_CAP_WRITEBACK_CACHE;
  if (s->atomic_trunc) c->want |= c->capable & FUSE_CAP_ATOMIC_O_TRUNC;
  /* A symlink's target never changes in place (a new target is a new inode), so the kernel
   * may keep it in its page cache: one READLINK per symlink, not one per path walk through it. */
  c->want |= c->capable & FUSE_CAP_CACHE_SYMLINKS;
  /* Reads answered with replyDataFd are spliced from the lower file into /dev/fuse: no copy
   * through user space (a third less daemon CPU per read). Pages are copied, never moved. */
  c->want |= c->capable & FUSE_CAP_SPLICE_WRITE;
  c->want &= ~FUSE_CAP_SPLICE_MOVE;
  /* HANDLE_KILLPRIV stays off: the kernel then clears suid/sgid with an explicit setattr,
   * which the filesystem sees (the write kill-priv flag would not reach JS). */
  napi_create_object(env, &info);
  napi_property_descriptor d[] = {
      PROP("maxWrite", u32(env, c->max_write)), PROP("maxRead", u32(env, c->max_read)),
      PROP("maxReadahead", u32(env, c->max_readahead)), PROP("capable", u32(env, c->capable)),
      PROP("want", u32(env, c->want)), PROP("protoMajor", u32(env, c->proto_major)),
      PROP("protoMinor", u32(env, c->proto_minor))};
  napi_define_properties(env, info, sizeof d / sizeof d[0], d);
  if (!call_js(s, OP_INIT, 1, &info, msg, sizeof msg)) {
    s->end_msg = strdup(msg);
    fuse_session_exit(s->se);
  }
}

static void ll_destroy(void *userdata) {
  session *s = userdata;
  if (!s->no_js) call_js(s, OP_DESTROY, 0, NULL, NULL, 0);
}

/* ---- session lifetime ---- */

/* Live sessions, so an exiting process still unmounts (process.exit() skips env cleanup). */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static session *live;
static void live_remove(session *s) {
  pthread_mutex_lock(&live_lock);
  for (session **p = &live; *p; p = &(*p)->next_live) if (*p == s) { *p = s->next_live; break; }
  pthread_mutex_unlock(&live_lock);
}
static void at_exit(void) {
  pthread_mutex_lock(&live_lock);
  for (session *s = live; s; s = s->next_live) if (s->se) fuse_session_unmount(s->se);
  pthread_mutex_unlock(&live_lock);
}

static void atexit_register(void) { atexit(at_exit); }
static void free_handle(uv_handle_t *h) { free(h); }
static void env_cleanup(void *arg);

/* Ends the session once: stop polling, answer what is outstanding, unmount, destroy,
 * then (js) call onExit. With js == 0 (env teardown) no JS runs. */
static void end_session(session *s, int js) {
  napi_env env = s->env;
  if (s->state != MOUNTED) return;
  s->state = ENDING;
  uv_poll_stop(s->poll); /* before the fd is closed by fuse_session_unmount */
  uv_close((uv_handle_t *)s->poll, free_handle);
  s->poll = NULL;
  fuse_session_exit(s->se);
  while (s->reqs) { reqw *w = s->reqs; fuse_req_t r = w->req; unlink_req(w); w->req = NULL; fuse_reply_err(r, EIO); }
  fuse_session_unmount(s->se);
  s->no_js = !js;
  fuse_session_destroy(s->se); /* calls ll_destroy -> ops.destroy() if INIT happened */
  s->se = NULL;
  free(s->buf.mem); s->buf.mem = NULL;
  live_remove(s);
  s->state = ENDED;
  if (!js) { if (s->orphan) free(s); return; }
  napi_remove_env_cleanup_hook(env, env_cleanup, s);
  napi_value cb, err = undef(env), res;
  if (s->end_msg) {
    napi_value m; napi_create_string_utf8(env, s->end_msg, NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, NULL, m, &err);
  }
  napi_get_reference_value(env, s->on_exit, &cb);
  if (napi_call_function(env, undef(env), cb, 1, &err, &res) != napi_ok)
    log_exception(env, "onExit", NULL, 0);
  for (int i = 0; i < OP_COUNT; i++) if (s->fn[i]) { napi_delete_reference(env, s->fn[i]); s->fn[i] = NULL; }
  napi_delete_reference(env, s->ops);
  napi_delete_reference(env, s->on_exit);
  napi_delete_reference(env, s->self); /* the session object may now be collected */
}

static void env_cleanup(void *arg) { end_session(arg, 0); }

static void session_finalize(napi_env env, void *data, void *hint) {
  session *s = data; (void)env; (void)hint;
  if (s->state == ENDED) { free(s->end_msg); free(s); } else s->orphan = 1; /* env teardown */
}

/* ---- polling before sleeping ----
 * A process working through many small operations (a shell loop creating files, git's lstat
 * of every tracked file) sends its next request a few microseconds after our reply. If the
 * daemon has gone to sleep in epoll by then, waking it takes an interrupt to another CPU and,
 * when that CPU is idle, bringing it out of its idle state: on a virtual machine a trip
 * through the hypervisor. Measured on the dev VM, that wake-up was half of each request's
 * time (docs/benchmarks.md, "Ninth round"). So when /dev/fuse runs dry the daemon polls it
 * for a short window before sleeping, yielding the CPU to anything else runnable.
 * The window adapts like KVM's halt polling: it grows (doubling from POLL_START_NS up to
 * poll_max_ns) when a sleep ended within poll_max_ns, that is, when polling a little longer
 * would have caught the request, and halves when a sleep was longer, so an idle or slowly
 * used mount polls little or not at all. poll_max_ns 0 turns it off. While polling, timers
 * and promise jobs wait (as they do while requests keep coming, up to BATCH).
 * sched_yield() hands the CPU to whatever else is runnable there; when that is a busy program
 * rather than our client, it keeps the CPU for its whole time slice (milliseconds), while a
 * daemon asleep in epoll would have been woken the moment the request came. Measured with the
 * daemon sharing its CPU with a busy loop and the client on the other: 2,000 one-byte writes
 * took 7.9 s polling, 0.4 s without. So a poll that lost the CPU (one round of poll and yield
 * lasting over LOST_NS) stops polling for a pause, 10 ms at first, doubling up to 1 s while
 * it keeps happening; a poll that yielded and had the CPU back at once ends the pauses. */
#define POLL_START_NS 10000
#define LOST_NS 200000
#define BACKOFF_MIN_NS 10000000
#define BACKOFF_MAX_NS 1000000000

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* /dev/fuse is drained: polls it for up to the current window; 1 if a request came. */
static int poll_briefly(session *s) {
  int64_t start = now_ns(), end = start + s->poll_ns, t = start;
  struct pollfd p = {fuse_session_fd(s->se), POLLIN, 0};
  int got = 0, lost = 0, kept = 0;
  while (s->poll_ns && t < end) {
    int r = poll(&p, 1, 0); /* a request, or an error the next read reports; not a signal */
    if (r > 0 || (r < 0 && errno != EINTR)) { got = 1; break; }
    if (lost) break; /* looked once more after losing the CPU: the request may have come */
    sched_yield();
    int64_t before = t;
    t = now_ns();
    if (t - before > LOST_NS) { lost = 1; end = t + 1; } else kept = 1;
  }
  if (s->poll_ns) {
    s->polls++;
    s->polled_ns += now_ns() - start;
    if (lost) {
      s->lost++;
      s->backoff_ns = s->backoff_ns ? s->backoff_ns * 2 : BACKOFF_MIN_NS;
      if (s->backoff_ns > BACKOFF_MAX_NS) s->backoff_ns = BACKOFF_MAX_NS;
      s->poll_off_until = t + s->backoff_ns;
      s->poll_ns = 0;
    } else if (kept) {
      s->backoff_ns = 0; /* yielded and had the CPU back at once: nothing busy here now */
    }
  }
  if (got) { s->caught++; return 1; }
  s->dry_since = start;
  return 0;
}

/* Woken from epoll: adapts the window to how long the sleep (with its poll) lasted. */
static void adapt_poll(session *s) {
  if (!s->dry_since) return;
  int64_t woke = now_ns(), slept = woke - s->dry_since;
  s->dry_since = 0;
  if (woke < s->poll_off_until) return; /* paused after losing the CPU (poll_ns is 0) */
  if (slept <= s->poll_max_ns) {
    s->poll_ns = s->poll_ns ? s->poll_ns * 2 : POLL_START_NS;
    if (s->poll_ns > s->poll_max_ns) s->poll_ns = s->poll_max_ns;
  } else {
    s->poll_ns /= 2;
    if (s->poll_ns < POLL_START_NS) s->poll_ns = 0;
  }
}

/* Reads and dispatches up to BATCH requests; returns when the fd is drained. */
static void pump(session *s) {
  for (int n = 0; n < BATCH && !fuse_session_exited(s->se); n++) {
    int res = fuse_session_receive_buf(s->se, &s->buf);
    if (res == -EINTR) continue;
    if (res == -EAGAIN) {
      /* A request still unanswered waits for JS work (a timer, a promise) that can only run
       * once we return to the event loop: no polling then. */
      if (!s->poll_max_ns || s->reqs || !poll_briefly(s)) { s->sleeps++; return; }
      n--; /* polled: not a request */
      continue;
    }
    if (res <= 0) { /* 0: ENODEV, unmounted from outside; < 0: a real error */
      if (res < 0 && !s->end_msg) {
        char m[160]; snprintf(m, sizeof m, "reading /dev/fuse: %s", strerror(-res));
        s->end_msg = strdup(m);
      }
      fuse_session_exit(s->se);
      return;
    }
    if (s->buf.size >= 8 && !(s->buf.flags & FUSE_BUF_IS_FD)) {
      uint32_t opcode; memcpy(&opcode, (char *)s->buf.mem + 4, 4); /* fuse_in_header.opcode */
      s->opcount[opcode < 64 ? opcode : 63]++;
    }
    napi_handle_scope hs; napi_open_handle_scope(s->env, &hs);
    s->dispatching++;
    fuse_session_process_buf(s->se, &s->buf);
    s->dispatching--;
    napi_close_handle_scope(s->env, hs);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  session *s = h->data; napi_env env = s->env;
  napi_handle_scope hs; napi_callback_scope cs; napi_value self;
  (void)events;
  if (s->state != MOUNTED) return;
  /* A callback scope drains process.nextTick and promise jobs when it closes, so ops
   * written as async functions make progress without another event. */
  napi_open_handle_scope(env, &hs);
  napi_get_reference_value(env, s->self, &self);
  napi_open_callback_scope(env, self, s->actx, &cs);
  s->in_cb = 1;
  adapt_poll(s);
  pump(s);
  /* libuv stops the handle on POLLERR; if the read did not explain it, end anyway. */
  if (status < 0 && !fuse_session_exited(s->se) && !s->end_msg) {
    char m[160]; snprintf(m, sizeof m, "polling /dev/fuse: %s", uv_strerror(status));
    s->end_msg = strdup(m);
  }
  if (s->state == MOUNTED && (status < 0 || fuse_session_exited(s->se))) end_session(s, 1);
  napi_close_callback_scope(env, cs);
  s->in_cb = 0;
  if (s->state == ENDED && s->actx) { napi_async_destroy(env, s->actx); s->actx = NULL; }
  napi_close_handle_scope(env, hs);
}

/* session.unmount(): end now, or right after the current request if called from an op. */
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  napi_value self; session *s;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  if (napi_unwrap(env, self, (void **)&s) != napi_ok) THROW("not a FuseSession");
  if (s->state != MOUNTED) return NULL;
  if (s->dispatching) { fuse_session_exit(s->se); return NULL; } /* pump() ends it */
  end_session(s, 1);
  if (!s->in_cb && s->actx) { napi_async_destroy(env, s->actx); s->actx = NULL; }
  return NULL;
}

/* libfuse reports mount problems through its log; keep the last line for the Error. */
static char last_log[512];
static void capture_log(enum fuse_log_level level, const char *fmt, va_list ap) {
  (void)level;
  vsnprintf(last_log, sizeof last_log, fmt, ap);
  size_t n = strlen(last_log);
  while (n && last_log[n - 1] == '\n') last_log[--n] = 0;
}

static napi_value mount_fail(napi_env env, session *s, const char *mp, const char *what) {
  char msg[5200]; struct stat st;
  /* fusermount3 (unprivileged mounts) prints its reason to a /dev/null stderr: guess it. */
  if (!last_log[0] && stat(mp, &st) == 0 && geteuid() != 0 && access(mp, W_OK) != 0)
    snprintf(last_log, sizeof last_log, "no write access to the mountpoint (fusermount3 needs it)");
  snprintf(msg, sizeof msg, "mount %s: %s%s%s", mp, what, last_log[0] ? ": " : "", last_log);
  if (s->se) fuse_session_destroy(s->se);
  for (int i = 0; i < OP_COUNT; i++) if (s->fn[i]) napi_delete_reference(env, s->fn[i]);
  free(s);
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* mount(mountpoint, ops, {options, init, debug}, onExit) -> FuseSession */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  ARGS(4);
  char mp[4096];
  napi_value v, list, res; napi_valuetype t; uint32_t n = 0; double d; bool b;
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  if (napi_get_value_string_utf8(env, argv[0], mp, sizeof mp, NULL) != napi_ok)
    THROW("mountpoint must be a string");
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_object) THROW("ops must be an object");
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_object) THROW("opts must be an object");
  if (napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function) THROW("onExit must be a function");

  /* Root may mount over a regular file; a home never wants that, so refuse it here. */
  struct stat st;
  if (stat(mp, &st) == 0 && !S_ISDIR(st.st_mode)) {
    char m[4200]; snprintf(m, sizeof m, "mount %s: not a directory", mp);
    napi_throw_error(env, NULL, m);
    return NULL;
  }
  session *s = calloc(1, sizeof *s);
  s->env = env; s->max_write = s->max_read = 1 << 20; s->readdirplus = 1; s->atomic_trunc = 1;
  napi_value io;
  if (get_opt(env, argv[2], "init", &io)) {
    if (get_opt(env, io, "maxWrite", &v) && napi_get_value_double(env, v, &d) == napi_ok) s->max_write = d;
    if (get_opt(env, io, "maxRead", &v) && napi_get_value_double(env, v, &d) == napi_ok) s->max_read = d;
    if (get_opt(env, io, "readdirplus", &v) && napi_get_value_bool(env, v, &b) == napi_ok) s->readdirplus = b;
    if (get_opt(env, io, "writebackCache", &v) && napi_get_value_bool(env, v, &b) == napi_ok) s->writeback = b;
    if (get_opt(env, io, "atomicOTrunc", &v) && napi_get_value_bool(env, v, &b) == napi_ok) s->atomic_trunc = b;
    if (get_opt(env, io, "pollMicros", &v) && napi_get_value_double(env, v, &d) == napi_ok && d >= 0)
      s->poll_max_ns = (int64_t)(d * 1000);
    if (get_opt(env, io, "xattrPrefix", &v) &&
        napi_get_value_string_utf8(env, v, s->xattr_prefix, sizeof s->xattr_prefix, NULL) != napi_ok)
      s->xattr_prefix[0] = 0;
  }
  /* Register only the ops JS implements: libfuse answers the rest itself (ENOSYS, or a
   * sensible default for open/opendir/release). No lock ops: the kernel then does POSIX
   * and flock locking locally, which is what a single-host home directory wants. */
  struct fuse_lowlevel_ops ll = {.init = ll_init, .destroy = ll_destroy};
  for (int i = 0; i < OP_COUNT; i++)
    if (napi_get_named_property(env, argv[1], op_names[i], &v) == napi_ok &&
        napi_typeof(env, v, &t) == napi_ok && t == napi_function)
      napi_create_reference(env, v, 1, &s->fn[i]);
#define REG(OP, f) if (s->fn[OP]) ll.f = ll_##f
  REG(OP_LOOKUP, lookup); REG(OP_GETATTR, getattr); REG(OP_SETATTR, setattr);
  REG(OP_READLINK, readlink); REG(OP_MKNOD, mknod); REG(OP_MKDIR, mkdir); REG(OP_UNLINK, unlink);
  REG(OP_RMDIR, rmdir); REG(OP_SYMLINK, symlink); REG(OP_RENAME, rename); REG(OP_LINK, link);
  REG(OP_OPEN, open); REG(OP_READ, read); REG(OP_WRITE, write); REG(OP_FLUSH, flush);
  REG(OP_RELEASE, release); REG(OP_FSYNC, fsync); REG(OP_OPENDIR, opendir); REG(OP_READDIR, readdir);
  REG(OP_READDIRPLUS, readdirplus); REG(OP_RELEASEDIR, releasedir); REG(OP_FSYNCDIR, fsyncdir);
  REG(OP_STATFS, statfs); REG(OP_SETXATTR, setxattr); REG(OP_GETXATTR, getxattr);
  REG(OP_LISTXATTR, listxattr); REG(OP_REMOVEXATTR, removexattr); REG(OP_CREATE, create);
  REG(OP_FALLOCATE, fallocate); REG(OP_FORGET, forget);
  if (s->fn[OP_FORGET]) ll.forget_multi = ll_forget_multi;

  /* fuse_session_new argv: "-o opt" for each option, plus max_read= (which libfuse 3.14
   * insists equals conn->max_read at INIT). */
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  char opt[1024];
  fuse_opt_add_arg(&args, "pershome");
  if (get_opt(env, argv[2], "options", &list)) napi_get_array_length(env, list, &n);
  for (uint32_t i = 0; i < n; i++) {
    napi_get_element(env, list, i, &v);
    if (napi_get_value_string_utf8(env, v, opt, sizeof opt, NULL) != napi_ok) {
      fuse_opt_free_args(&args);
      return mount_fail(env, s, mp, "options must be strings");
    }
    fuse_opt_add_arg(&args, "-o"); fuse_opt_add_arg(&args, opt);
  }
  snprintf(opt, sizeof opt, "max_read=%u", s->max_read);
  fuse_opt_add_arg(&args, "-o"); fuse_opt_add_arg(&args, opt);
  if (get_opt(env, argv[2], "debug", &v) && napi_get_value_bool(env, v, &b) == napi_ok && b)
    fuse_opt_add_arg(&args, "-d");

  last_log[0] = 0;
  fuse_set_log_func(capture_log);
  s->se = fuse_session_new(&args, &ll, sizeof ll, s);
  fuse_opt_free_args(&args);
  if (!s->se) { fuse_set_log_func(NULL); return mount_fail(env, s, mp, "bad options"); }
  if (fuse_session_mount(s->se, mp) != 0) { fuse_set_log_func(NULL); return mount_fail(env, s, mp, "mount failed"); }
  fuse_set_log_func(NULL);

  int fd = fuse_session_fd(s->se);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); /* receive returns -EAGAIN when drained */
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  s->poll = malloc(sizeof *s->poll);
  uv_poll_init(loop, s->poll, fd);
  s->poll->data = s;
  uv_poll_start(s->poll, UV_READABLE, on_poll); /* active handle: keeps Node alive while mounted */

  napi_value name;
  napi_create_object(env, &res);
  napi_create_string_utf8(env, mp, NAPI_AUTO_LENGTH, &v);
  napi_property_descriptor pd[] = {
      {"mountpoint", NULL, NULL, NULL, NULL, v, napi_enumerable, NULL},
      {"unmount", NULL, js_unmount, NULL, NULL, NULL, napi_default, NULL}};
  napi_define_properties(env, res, 2, pd);
  napi_wrap(env, res, s, session_finalize, NULL, NULL);
  napi_create_reference(env, res, 1, &s->self); /* strong while mounted */
  napi_create_reference(env, argv[1], 1, &s->ops);
  napi_create_reference(env, argv[3], 1, &s->on_exit);
  napi_create_string_utf8(env, "pershome_fuse", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->actx);
  napi_add_env_cleanup_hook(env, env_cleanup, s);
  pthread_once(&once, atexit_register);
  pthread_mutex_lock(&live_lock); s->next_live = live; live = s; pthread_mutex_unlock(&live_lock);
  return res;
}

/* ---- replies: unwrap, validate (may throw; the request stays open), then answer once ---- */

#define REQ reqw *w = get_req(env, argv[0]); if (!w) return NULL
#define ANSWER(call) do { fuse_req_t r = finish(w); if (r) call; return NULL; } while (0)

static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  ARGS(2); REQ; int32_t e;
  if (napi_get_value_int32(env, argv[1], &e) != napi_ok) THROW("errno must be a number");
  ANSWER(fuse_reply_err(r, e < 0 ? -e : e)); /* accept -ENOENT as well as ENOENT */
}
static napi_value js_reply_none(napi_env env, napi_callback_info info) {
  ARGS(1); REQ;
  ANSWER(fuse_reply_none(r));
}
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  ARGS(2); REQ; struct fuse_entry_param e;
  if (!to_entry(env, argv[1], &e)) return NULL;
  ANSWER(fuse_reply_entry(r, &e));
}
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  ARGS(3); REQ; struct fuse_entry_param e; struct fuse_file_info fi;
  if (!to_entry(env, argv[1], &e) || !to_open(env, argv[2], &fi)) return NULL;
  ANSWER(fuse_reply_create(r, &e, &fi));
}
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  ARGS(3); REQ; struct stat st; double timeout;
  if (!to_stat(env, argv[1], &st)) return NULL;
  if (napi_get_value_double(env, argv[2], &timeout) != napi_ok) THROW("attrTimeout must be a number");
  ANSWER(fuse_reply_attr(r, &st, timeout));
}
/* replyEntryFlat(req) / replyCreateFlat(req) / replyAttrFlat(req) / replyOpenFlat(req): the
 * same answers with the arguments packed into the flat array (flatReplyArray()) just before. */
static napi_value js_reply_entry_flat(napi_env env, napi_callback_info info) {
  ARGS(1); REQ; struct fuse_entry_param e;
  flat_entry(flat(env), &e);
  ANSWER(fuse_reply_entry(r, &e));
}
static napi_value js_reply_create_flat(napi_env env, napi_callback_info info) {
  ARGS(1); REQ; struct fuse_entry_param e; struct fuse_file_info fi; const double *f = flat(env);
  flat_entry(f, &e); flat_open(f, &fi);
  ANSWER(fuse_reply_create(r, &e, &fi));
}
static napi_value js_reply_attr_flat(napi_env env, napi_callback_info info) {
  ARGS(1); REQ; struct stat st; const double *f = flat(env);
  flat_stat(f, &st);
  ANSWER(fuse_reply_attr(r, &st, f[F_ATTR_TIMEOUT]));
}
static napi_value js_reply_open_flat(napi_env env, napi_callback_info info) {
  ARGS(1); REQ; struct fuse_file_info fi;
  flat_open(flat(env), &fi);
  ANSWER(fuse_reply_open(r, &fi));
}
/* flatReplyArray() -> the Float64Array the *Flat replies read (one per addon instance). */
static napi_value js_flat_reply_array(napi_env env, napi_callback_info info) {
  addon *a; napi_value ab, arr; (void)info;
  napi_get_instance_data(env, (void **)&a);
  napi_get_reference_value(env, a->flat_ref, &ab);
  CHECK(napi_create_typedarray(env, napi_float64_array, F_COUNT, ab, 0, &arr));
  return arr;
}

static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  ARGS(2); REQ; char target[4097];
  if (!get_name(env, argv[1], target, sizeof target, "target")) return NULL;
  ANSWER(fuse_reply_readlink(r, target));
}
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  ARGS(2); REQ; struct fuse_file_info fi;
  if (!to_open(env, argv[1], &fi)) return NULL;
  ANSWER(fuse_reply_open(r, &fi));
}
static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  ARGS(2); REQ; double n;
  if (napi_get_value_double(env, argv[1], &n) != napi_ok || n < 0) THROW("count must be a number >= 0");
  ANSWER(fuse_reply_write(r, (size_t)n));
}
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  ARGS(3); REQ; void *d; size_t n; double len; napi_valuetype t;
  if (napi_get_buffer_info(env, argv[1], &d, &n) != napi_ok) THROW("buf must be a Buffer");
  napi_typeof(env, argv[2], &t);
  if (t != napi_undefined) {
    if (napi_get_value_double(env, argv[2], &len) != napi_ok || len < 0 || len > n)
      THROW("length must be a number within the buffer");
    n = (size_t)len;
  }
  /* More than the kernel asked for is a protocol error it would turn into EIO. */
  if (w->size && n > w->size) {
    napi_throw_range_error(env, NULL, "replyBuf: more bytes than the request's size");
    return NULL;
  }
  ANSWER(fuse_reply_buf(r, d, n));
}
/* replyDataFd(req, fd, size, off): the answer to a read, read by libfuse straight from `fd`
 * (spliced from the lower file into /dev/fuse when the kernel allows it: no copy through user
 * space). A short read (end of file) sends fewer bytes; a read error answers its errno. */
static napi_value js_reply_data_fd(napi_env env, napi_callback_info info) {
  ARGS(4); REQ; int32_t fd; double size, off;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0) THROW("fd must be a descriptor");
  if (napi_get_value_double(env, argv[2], &size) != napi_ok || size < 0) THROW("size must be a number >= 0");
  if (napi_get_value_double(env, argv[3], &off) != napi_ok || off < 0) THROW("offset must be a number >= 0");
  if (w->size && size > w->size) {
    napi_throw_range_error(env, NULL, "replyDataFd: more bytes than the request's size");
    return NULL;
  }
  struct fuse_bufvec buf = FUSE_BUFVEC_INIT((size_t)size);
  buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
  buf.buf[0].fd = fd;
  buf.buf[0].pos = (off_t)off;
  ANSWER(fuse_reply_data(r, &buf, 0));
}
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  ARGS(2); REQ; struct statvfs st; double v[9];
  static const char *const k[] = {"bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail", "namemax"};
  for (int i = 0; i < 9; i++) if (!get_num_named(env, argv[1], k[i], &v[i])) return NULL;
  memset(&st, 0, sizeof st);
  st.f_bsize = v[0]; st.f_frsize = v[1]; st.f_blocks = v[2]; st.f_bfree = v[3]; st.f_bavail = v[4];
  st.f_files = v[5]; st.f_ffree = v[6]; st.f_favail = v[7]; st.f_namemax = v[8];
  ANSWER(fuse_reply_statfs(r, &st));
}
static napi_value js_reply_xattr(napi_env env, napi_callback_info info) {
  ARGS(2); REQ; double n;
  if (napi_get_value_double(env, argv[1], &n) != napi_ok || n < 0) THROW("size must be a number >= 0");
  ANSWER(fuse_reply_xattr(r, (size_t)n));
}

/* Answers a listing packed into buf (freed here); returns how many entries it holds. */
static napi_value send_dirents(napi_env env, reqw *w, char *buf, size_t used, uint32_t count) {
  if (w->replied) { /* a getter on an entry answered this request meanwhile */
    free(buf);
    napi_throw_error(env, "EALREADY", "FUSE request already replied");
    return NULL;
  }
  fuse_req_t r = finish(w);
  if (r) fuse_reply_buf(r, buf, used);
  free(buf);
  return u32(env, count);
}

/* replyDirents / replyDirentsPlus: pack entries until `size` is full; return the count. */
static napi_value reply_dirents(napi_env env, napi_callback_info info, int plus) {
  ARGS(3); REQ; double dsize; uint32_t count; size_t used = 0; uint32_t i;
  char name[NAME_CAP];
  if (napi_get_value_double(env, argv[1], &dsize) != napi_ok || dsize < 0) THROW("size must be a number");
  if (napi_get_array_length(env, argv[2], &count) != napi_ok) THROW("entries must be an array");
  size_t size = (size_t)dsize;
  if (w->size && size > w->size) size = w->size;
  if (!w->s) { finish(w); return u32(env, 0); } /* session gone: nothing to pack for */
  char *buf = malloc(size ? size : 1);
  if (!buf) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  for (i = 0; i < count; i++) {
    napi_value ent, v; double off, ino, mode; size_t need;
    struct fuse_entry_param e; memset(&e, 0, sizeof e);
    if (napi_get_element(env, argv[2], i, &ent) != napi_ok ||
        napi_get_property(env, ent, key(env, K_name), &v) != napi_ok ||
        !get_name(env, v, name, sizeof name, "name") || !get_num(env, ent, K_off, &off))
      goto bad;
    if (plus) {
      if (napi_get_property(env, ent, key(env, K_entry), &v) != napi_ok || !to_entry(env, v, &e)) goto bad;
      need = fuse_add_direntry_plus(w->req, buf + used, size - used, name, &e, (off_t)off);
    } else {
      if (!get_num(env, ent, K_ino, &ino) || !get_num(env, ent, K_mode, &mode)) goto bad;
      e.attr.st_ino = ino; e.attr.st_mode = mode;
      need = fuse_add_direntry(w->req, buf + used, size - used, name, &e.attr, (off_t)off);
    }
    if (need > size - used) break; /* did not fit: nothing was written */
    used += need;
  }
  return send_dirents(env, w, buf, used, i);
bad:
  free(buf);
  return NULL;
}
static napi_value js_reply_dirents(napi_env env, napi_callback_info info) { return reply_dirents(env, info, 0); }
static napi_value js_reply_dirents_plus(napi_env env, napi_callback_info info) { return reply_dirents(env, info, 1); }

/* replyDirentsPlusFlat(req, size, count, nums, names): replyDirentsPlus with the entries
 * packed by index.ts. Entry i is nums[i * DP_STRIDE ...]: the F_* entry fields (F_INO to
 * F_ENTRY_TIMEOUT), then its offset and where its name ends in `names` (it starts where the
 * one before ended). Two N-API calls for the whole listing instead of ~25 per entry. */
enum { DP_OFF = F_ENTRY_TIMEOUT + 1, DP_NAME_END, DP_STRIDE };
static napi_value js_reply_dirents_plus_flat(napi_env env, napi_callback_info info) {
  ARGS(5); REQ; double dsize, dcount; napi_typedarray_type tt; size_t len, nlen, used = 0, start = 0;
  void *nums_v, *names_v; napi_value ab; size_t boff; uint32_t i;
  char name[NAME_CAP];
  if (napi_get_value_double(env, argv[1], &dsize) != napi_ok || dsize < 0) THROW("size must be a number");
  if (napi_get_value_double(env, argv[2], &dcount) != napi_ok || dcount < 0) THROW("count must be a number");
  if (napi_get_typedarray_info(env, argv[3], &tt, &len, &nums_v, &ab, &boff) != napi_ok || tt != napi_float64_array)
    THROW("nums must be a Float64Array");
  if (napi_get_buffer_info(env, argv[4], &names_v, &nlen) != napi_ok) THROW("names must be a Buffer");
  size_t count = (size_t)dcount;
  if (count > len / DP_STRIDE) THROW("nums holds fewer than count entries");
  size_t size = (size_t)dsize;
  if (w->size && size > w->size) size = w->size;
  if (!w->s) { finish(w); return u32(env, 0); } /* session gone: nothing to pack for */
  char *buf = malloc(size ? size : 1);
  if (!buf) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  const double *f = nums_v; const char *names = names_v;
  for (i = 0; i < count; i++, f += DP_STRIDE) {
    struct fuse_entry_param e; double end = f[DP_NAME_END];
    if (!(end >= (double)start && end <= (double)nlen && end - start < NAME_CAP)) {
      free(buf);
      THROW("entry %u: name end %g out of range", i, end);
    }
    size_t n = (size_t)end - start;
    memcpy(name, names + start, n); name[n] = 0;
    start = (size_t)end;
    if (n == 0 || strlen(name) != n) { free(buf); THROW("entry %u: name empty or with a NUL byte", i); }
    flat_entry(f, &e);
    size_t need = fuse_add_direntry_plus(w->req, buf + used, size - used, name, &e, (off_t)f[DP_OFF]);
    if (need > size - used) break; /* did not fit: nothing was written */
    used += need;
  }
  return send_dirents(env, w, buf, used, i);
}

/* ---- notifications (write to /dev/fuse synchronously: see the deadlock note in docs) ---- */

static session *get_session(napi_env env, napi_value v) {
  session *s;
  if (napi_unwrap(env, v, (void **)&s) != napi_ok) THROW("not a FuseSession");
  return s;
}
static napi_value js_notify_inval_inode(napi_env env, napi_callback_info info) {
  ARGS(4); double ino, off, len; session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  if (napi_get_value_double(env, argv[1], &ino) != napi_ok || napi_get_value_double(env, argv[2], &off) != napi_ok ||
      napi_get_value_double(env, argv[3], &len) != napi_ok) THROW("ino, off, len must be numbers");
  if (s->state != MOUNTED) return num(env, -ENOTCONN);
  return num(env, fuse_lowlevel_notify_inval_inode(s->se, (fuse_ino_t)ino, (off_t)off, (off_t)len));
}
static napi_value js_notify_inval_entry(napi_env env, napi_callback_info info) {
  ARGS(3); double parent; char name[NAME_CAP]; session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  if (napi_get_value_double(env, argv[1], &parent) != napi_ok) THROW("parent must be a number");
  if (!get_name(env, argv[2], name, sizeof name, "name")) return NULL;
  if (s->state != MOUNTED) return num(env, -ENOTCONN);
  return num(env, fuse_lowlevel_notify_inval_entry(s->se, (fuse_ino_t)parent, name, strlen(name)));
}

/* requestCounts(session) -> {opname: count}: every request the kernel sent, including those
 * libfuse answers itself (a cheap counter for profiling; docs/benchmarks.md). */
static const char *const kernel_ops[64] = {
    [1] = "lookup", [2] = "forget", [3] = "getattr", [4] = "setattr", [5] = "readlink",
    [6] = "symlink", [8] = "mknod", [9] = "mkdir", [10] = "unlink", [11] = "rmdir",
    [12] = "rename", [13] = "link", [14] = "open", [15] = "read", [16] = "write",
    [17] = "statfs", [18] = "release", [20] = "fsync", [21] = "setxattr", [22] = "getxattr",
    [23] = "listxattr", [24] = "removexattr", [25] = "flush", [26] = "init", [27] = "opendir",
    [28] = "readdir", [29] = "releasedir", [30] = "fsyncdir", [31] = "getlk", [32] = "setlk",
    [33] = "setlkw", [34] = "access", [35] = "create", [36] = "interrupt", [37] = "bmap",
    [38] = "destroy", [39] = "ioctl", [40] = "poll", [41] = "notify_reply",
    [42] = "batch_forget", [43] = "fallocate", [44] = "readdirplus", [45] = "rename2",
    [46] = "lseek", [47] = "copy_file_range", [48] = "setupmapping", [49] = "removemapping",
    [50] = "syncfs", [51] = "tmpfile", [52] = "statx", [63] = "other"};
static napi_value js_request_counts(napi_env env, napi_callback_info info) {
  ARGS(1); session *s = get_session(env, argv[0]); napi_value o; char other[16];
  if (!s) return NULL;
  napi_create_object(env, &o);
  for (int i = 0; i < 64; i++) {
    if (!s->opcount[i]) continue;
    const char *n = kernel_ops[i];
    if (!n) { snprintf(other, sizeof other, "op%d", i); n = other; }
    napi_set_named_property(env, o, n, num(env, s->opcount[i]));
  }
  return o;
}

/* pollStats(session) -> {polls, caught, polledMicros, windowMicros, sleeps, lost}: how often
 * the daemon polled before sleeping, how often a request came while it did, the time spent
 * polling, the window now, how often it went to sleep in epoll with /dev/fuse drained, and how
 * many polls lost the CPU to another task (docs/native-addon.md, "Polling before sleeping"). */
static napi_value js_poll_stats(napi_env env, napi_callback_info info) {
  ARGS(1); session *s = get_session(env, argv[0]); napi_value o;
  if (!s) return NULL;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "polls", num(env, s->polls));
  napi_set_named_property(env, o, "caught", num(env, s->caught));
  napi_set_named_property(env, o, "polledMicros", num(env, s->polled_ns / 1000));
  napi_set_named_property(env, o, "windowMicros", num(env, (double)s->poll_ns / 1000));
  napi_set_named_property(env, o, "sleeps", num(env, s->sleeps));
  napi_set_named_property(env, o, "lost", num(env, s->lost));
  return o;
}

static void addon_finalize(napi_env env, void *data, void *hint) {
  addon *a = data; (void)hint;
  napi_delete_reference(env, a->keys);
  napi_delete_reference(env, a->req_class);
  napi_delete_reference(env, a->flat_ref);
  napi_delete_reference(env, a->fi_make);
  free(a);
}

/* fsync_many.c: fsync several descriptors at once (not FUSE; it shares the addon to keep one build) */
napi_value js_fsync_many(napi_env env, napi_callback_info info);
/* closer.c: close descriptors on threads of their own (vfat's `flush` sleeps in close) */
napi_value js_close_later(napi_env env, napi_callback_info info);
napi_value js_close_wait(napi_env env, napi_callback_info info);
napi_value js_closes_pending(napi_env env, napi_callback_info info);
/* prefetch.c: read a folder's metadata ahead into the kernel's caches */
napi_value js_prefetch_folder(napi_env env, napi_callback_info info);
napi_value js_prefetch_wait(napi_env env, napi_callback_info info);
napi_value js_prefetch_stats(napi_env env, napi_callback_info info);

static napi_value init_module(napi_env env, napi_value exports) {
  addon *a = calloc(1, sizeof *a); napi_value v, arr;
  napi_create_array_with_length(env, K_COUNT, &arr);
  for (int i = 0; i < K_COUNT; i++) {
    napi_create_string_utf8(env, key_names[i], NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, arr, i, v);
  }
  napi_create_reference(env, arr, 1, &a->keys);
  napi_property_descriptor g[4] = {
      {"uid", NULL, NULL, req_get, NULL, NULL, napi_enumerable, (void *)0},
      {"gid", NULL, NULL, req_get, NULL, NULL, napi_enumerable, (void *)1},
      {"pid", NULL, NULL, req_get, NULL, NULL, napi_enumerable, (void *)2},
      {"umask", NULL, NULL, req_get, NULL, NULL, napi_enumerable, (void *)3}};
  napi_define_class(env, "FuseReq", NAPI_AUTO_LENGTH, req_ctor, NULL, 4, g, &v);
  napi_create_reference(env, v, 1, &a->req_class);
  /* Made here, not in JS, so its memory is ours to read for the addon's whole life. */
  napi_create_arraybuffer(env, F_COUNT * sizeof(double), (void **)&a->flat, &v);
  memset(a->flat, 0, F_COUNT * sizeof(double));
  napi_create_reference(env, v, 1, &a->flat_ref);
  napi_value src;
  napi_create_string_utf8(env, FI_MAKE, NAPI_AUTO_LENGTH, &src);
  CHECK(napi_run_script(env, src, &v));
  napi_create_reference(env, v, 1, &a->fi_make);
  napi_set_instance_data(env, a, addon_finalize, NULL);

#define FN(n, f) {n, NULL, f, NULL, NULL, NULL, napi_enumerable, NULL}
  napi_property_descriptor d[] = {
      FN("mount", js_mount), FN("replyErr", js_reply_err), FN("replyNone", js_reply_none),
      FN("replyEntry", js_reply_entry), FN("replyCreate", js_reply_create),
      FN("replyAttr", js_reply_attr), FN("replyReadlink", js_reply_readlink),
      FN("replyOpen", js_reply_open), FN("replyWrite", js_reply_write), FN("replyBuf", js_reply_buf), FN("replyDataFd", js_reply_data_fd),
      FN("replyStatfs", js_reply_statfs), FN("replyXattr", js_reply_xattr),
      FN("replyDirents", js_reply_dirents), FN("replyDirentsPlus", js_reply_dirents_plus),
      FN("notifyInvalInode", js_notify_inval_inode), FN("notifyInvalEntry", js_notify_inval_entry),
      FN("requestCounts", js_request_counts), FN("pollStats", js_poll_stats), FN("replyEntryFlat", js_reply_entry_flat),
      FN("replyCreateFlat", js_reply_create_flat), FN("replyAttrFlat", js_reply_attr_flat),
      FN("replyOpenFlat", js_reply_open_flat), FN("flatReplyArray", js_flat_reply_array),
      FN("replyDirentsPlusFlat", js_reply_dirents_plus_flat), FN("fsyncMany", js_fsync_many),
      FN("closeLater", js_close_later), FN("closeWait", js_close_wait), FN("closesPending", js_closes_pending),
      FN("prefetchFolder", js_prefetch_folder), FN("prefetchWait", js_prefetch_wait), FN("prefetchStats", js_prefetch_stats)};
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
