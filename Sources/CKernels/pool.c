#include "pool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define relax() _mm_pause()
#else
#define relax() ((void)0)
#endif

enum { MAX_HELPERS = 63 };
// How long a helper spins for the next call before it sleeps.
static const long SPIN_NANOSECONDS = 2000000;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int sleepers = 0;
static int started = 0;               // helpers running (grows, never shrinks)
static _Atomic unsigned epoch = 0;    // bumped once per call
static _Atomic int remaining = 0;     // helpers yet to finish the current call
static atomic_flag busy = ATOMIC_FLAG_INIT;
static unsigned start_epoch[MAX_HELPERS + 1];   // the epoch each helper was started at
static herd_part_fn job_fn;
static void *job_ctx;
static int job_parts;

static long nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *helper(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned seen = start_epoch[id];
    for (;;) {
        unsigned e;
        long since = 0;
        int spins = 0;
        while ((e = atomic_load_explicit(&epoch, memory_order_acquire)) == seen) {
            if ((++spins & 1023) == 0) {
                long now = nanoseconds();
                if (since == 0) since = now;
                else if (now - since > SPIN_NANOSECONDS) {
                    pthread_mutex_lock(&mu);
                    sleepers++;
                    while (atomic_load_explicit(&epoch, memory_order_acquire) == seen) pthread_cond_wait(&wake, &mu);
                    sleepers--;
                    pthread_mutex_unlock(&mu);
                    since = 0;
                }
            }
            relax();
        }
        seen = e;
        if (id < job_parts) job_fn(job_ctx, id, job_parts);
        atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel);
    }
    return 0;
}

void herd_parallel(herd_part_fn fn, void *ctx, int parts) {
    if (parts < 1) parts = 1;
    if (parts > MAX_HELPERS + 1) parts = MAX_HELPERS + 1;
    if (parts == 1 || atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) {
        for (int p = 0; p < parts; p++) fn(ctx, p, parts);
        return;
    }
    while (started < parts - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        start_epoch[started + 1] = atomic_load_explicit(&epoch, memory_order_relaxed);
        if (pthread_create(&t, &attr, helper, (void *)(intptr_t)(started + 1)) != 0) {
            pthread_attr_destroy(&attr);
            break;
        }
        pthread_attr_destroy(&attr);
        started++;
    }
    int helpers = started;
    if (parts > helpers + 1) parts = helpers + 1;   // could not start them all
    job_fn = fn; job_ctx = ctx; job_parts = parts;
    atomic_store_explicit(&remaining, helpers, memory_order_relaxed);
    atomic_fetch_add_explicit(&epoch, 1, memory_order_release);
    pthread_mutex_lock(&mu);
    if (sleepers > 0) pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&mu);
    fn(ctx, 0, parts);
    while (atomic_load_explicit(&remaining, memory_order_acquire) > 0) relax();
    atomic_flag_clear_explicit(&busy, memory_order_release);
}
