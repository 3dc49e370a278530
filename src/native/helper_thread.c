/* start_helper_thread: helper_thread.h */
#define _GNU_SOURCE
#include "helper_thread.h"

#include <pthread.h>
#include <signal.h>

int start_helper_thread(void *(*fn)(void *), size_t stack) {
  pthread_attr_t attr;
  sigset_t all, old;
  pthread_t t;
  int err = pthread_attr_init(&attr);
  if (err != 0) return err;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, stack);
  /* the new thread inherits the mask it is created under: block all, create, restore */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  err = pthread_create(&t, &attr, fn, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return err;
}
