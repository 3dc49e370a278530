/* Starts the addon's background threads (closer.c, prefetch.c) the one way they all need. */
#ifndef PERSHOME_HELPER_THREAD_H
#define PERSHOME_HELPER_THREAD_H
#include <stddef.h>

/* Starts fn(NULL) on a detached thread with a `stack`-byte stack and every signal blocked
 * (signals are Node's business). Returns 0, or the error pthread_create gave. */
int start_helper_thread(void *(*fn)(void *), size_t stack);

#endif
