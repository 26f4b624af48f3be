#ifndef PGAN_CHWLOC_SHIM_H
#define PGAN_CHWLOC_SHIM_H
#include <hwloc.h>
#include <sched.h>

/* sched_getcpu is behind _GNU_SOURCE in glibc's headers; declare it so Swift can read back where a thread runs. */
extern int sched_getcpu(void);
#endif
