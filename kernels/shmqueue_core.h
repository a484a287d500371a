/*
 * gristmill shared-memory queue: the C core (status codes in, no Python).
 *
 * A multi-producer multi-consumer FIFO of byte messages in one shared-memory block:
 *
 *   [ gq_header (GQ_HEADER_SIZE bytes) ][ ring of `capacity` bytes ]
 *
 * Records in the ring are 8-byte aligned: { uint32 len; uint32 meta; payload padded to 8 }.
 * `meta` is opaque to the core (the Python shell stores a type tag in it). Positions `head`
 * and `tail` are monotonically increasing byte counters; the ring offset is pos % capacity.
 * A record's 8-byte header never straddles the wrap (capacity is a multiple of 8); its
 * payload may, and is copied in two pieces.
 *
 * Locking: one pthread mutex, PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST. A process that
 * dies holding it (SIGKILL inside put/get) hands the next locker EOWNERDEAD; the queue state
 * is always consistent because it is committed last and atomically: the (head, tail, count)
 * triple lives in two slots and a commit writes the inactive slot, then flips `cur` with one
 * aligned 32-bit store. A half-written message or a half-done get is thereby discarded
 * (the message stays queued for another consumer). A holder that is stopped, not dead
 * (SIGSTOP, a debugger), keeps the lock: lockers wait for it in slices (gq_lock_slice), so a
 * timed or non-blocking call still gives up at its deadline (at least one slice after it
 * began) and an untimed one still runs signal handlers.
 *
 * Waiting: Linux futexes on two sequence counters (not-empty / not-full), bumped on every
 * commit. Waiters sleep in slices (GQ_WAIT_SLICE_NS) so that a wake-up lost to a waiter that
 * was killed costs at most one slice, never a hang, and the Python shell can check signals.
 * Sleepers register their pid under the mutex so that wake-ups are only issued when someone
 * sleeps; a killed sleeper's registration is reaped (kill(pid, 0) == ESRCH) the first time
 * a wake-up finds nobody in the kernel. A sleeping putter also registers the room its batch
 * needs, and gets wake putters only once the smallest such batch fits (a get that frees less
 * would only make every producer take the lock to go back to sleep).
 */
#ifndef GRISTMILL_SHMQUEUE_CORE_H
#define GRISTMILL_SHMQUEUE_CORE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* status codes */
#define GQ_OK 0
#define GQ_EMPTY 1     /* nothing to get (non-blocking or timed out) */
#define GQ_FULL 2      /* no room (non-blocking or timed out) */
#define GQ_BUSY 3      /* try-lock failed: call the blocking variant */
#define GQ_AGAIN 4     /* a wait slice passed: check signals, call again */
#define GQ_TOO_BIG 5   /* can never fit: capacity or maxsize exceeded */
#define GQ_NOMEM 6     /* receive buffer allocation failed */
#define GQ_ERROR 7     /* pthread/futex error; errno-like code in gq_last_error */
#define GQ_BAD_BLOCK 8 /* not a gristmill queue, or wrong version/size */

#define GQ_MAGIC 0x6772697374514d31ULL /* "gristQM1" */
#define GQ_VERSION 2u
#define GQ_HEADER_SIZE 2048u
#define GQ_MAX_WAITERS 64 /* per side; more still work, but a dead one stays counted */
#define GQ_WAIT_SLICE_NS 100000000LL /* 100 ms */
#define GQ_MAX_MSG_LEN 0xFFFFFFFFull

typedef struct {
    uint64_t head;  /* bytes consumed since creation */
    uint64_t tail;  /* bytes produced since creation */
    uint64_t count; /* messages in the ring */
    uint64_t _pad;
} gq_state;

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t capacity; /* ring bytes, multiple of 8 */
    uint64_t maxsize;  /* max messages, 0 = unbounded */
    uint64_t total_size;
    _Alignas(64) pthread_mutex_t mutex;
    _Alignas(64) gq_state state[2];
    uint32_t cur;             /* index of the committed state slot */
    uint32_t seq_not_empty;   /* futex word, bumped after each put */
    uint32_t seq_not_full;    /* futex word, bumped after each get */
    uint32_t waiting_getters; /* consumers sleeping (under the mutex) */
    uint32_t waiting_putters; /* producers sleeping (under the mutex) */
    int32_t debug_holder;     /* test hook: pid paused inside put's critical section */
    uint32_t wakes_pending;   /* getters woken that have not re-taken the lock yet */
    uint64_t recoveries;      /* times a dead owner's lock was recovered */
    uint64_t total_put;
    uint64_t total_got;
    /* pid of each registered sleeper (0 = free slot), getters then putters: a sleeper that
       is killed leaves its pid behind, and is reaped once a wake-up finds nobody asleep */
    int32_t waiter_pid[2][GQ_MAX_WAITERS];
    /* what each sleeping putter waits for: ring bytes and messages. Consumers wake putters
       only once the smallest of these fits, not on every get: a big batch waits for several
       gets, and waking every producer on each of them is a thundering herd */
    uint64_t waiter_need[GQ_MAX_WAITERS];
    uint32_t waiter_nmsg[GQ_MAX_WAITERS];
    uint32_t untracked_putters; /* sleepers past the table: their needs are unknown */
    uint64_t putter_wakeups;    /* wake-ups issued to sleeping putters (inspection) */
} gq_header;

_Static_assert(sizeof(gq_header) <= GQ_HEADER_SIZE, "gq_header too large");

typedef struct {
    const char *a; /* first piece of the payload (e.g. a type header) */
    uint64_t alen;
    const char *b; /* second piece (e.g. the array data) */
    uint64_t blen;
    uint32_t meta;
} gq_msg;

static inline uint64_t gq_round8(uint64_t n) { return (n + 7u) & ~(uint64_t)7u; }
static inline char *gq_ring(gq_header *h) { return (char *)h + GQ_HEADER_SIZE; }

static inline int64_t gq_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- test hook: pause inside put's critical section (process-local) ------------------- */
static double gq_debug_put_pause_s = 0.0;
static inline void gq_set_debug_put_pause(double s) { gq_debug_put_pause_s = s; }

/* ---- futex helpers ----------------------------------------------------------------------- */
static inline int gq_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
    ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
    /* shared (non-private) futex: the word lives in memory mapped by several processes */
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT, expected, &ts, NULL, 0);
}

/* Returns how many sleepers were woken. */
static inline long gq_futex_wake(uint32_t *addr, int n) {
    return syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---- lock helpers ------------------------------------------------------------------------ */
static inline void gq_recovered(gq_header *h) {
    /* The dead owner's uncommitted writes are invisible: nothing to repair but the flag. */
    __atomic_store_n(&h->debug_holder, 0, __ATOMIC_RELAXED);
    h->recoveries++;
    pthread_mutex_consistent(&h->mutex);
}

/*
 * Lock, waiting at most one slice: 0 = locked, GQ_AGAIN = still held after GQ_WAIT_SLICE_NS,
 * GQ_ERROR. A holder that died hands the lock over (EOWNERDEAD); one that is alive but not
 * running (SIGSTOPped, a debugger, a frozen cgroup) would otherwise block every other process
 * for as long as it stays stopped, past any timeout and deaf to signals.
 */
static inline int gq_lock_slice(gq_header *h) {
    int r = pthread_mutex_trylock(&h->mutex);
    if (r == EBUSY) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + GQ_WAIT_SLICE_NS;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        r = pthread_mutex_clocklock(&h->mutex, CLOCK_MONOTONIC, &ts);
    }
    if (r == 0) return 0;
    if (r == EOWNERDEAD) {
        gq_recovered(h);
        return 0;
    }
    return r == ETIMEDOUT ? GQ_AGAIN : GQ_ERROR;
}

static inline int gq_past(int64_t deadline_ns) {
    return deadline_ns >= 0 && gq_now_ns() >= deadline_ns;
}

/* 0 = locked, GQ_BUSY = held by someone, other = error */
static inline int gq_trylock(gq_header *h) {
    int r = pthread_mutex_trylock(&h->mutex);
    if (r == 0) return 0;
    if (r == EBUSY) return GQ_BUSY;
    if (r == EOWNERDEAD) {
        gq_recovered(h);
        return 0;
    }
    return r;
}

static inline void gq_unlock(gq_header *h) { pthread_mutex_unlock(&h->mutex); }

/* ---- sleeper registry (mutex held) ------------------------------------------------------- */
#define GQ_GETTERS 0
#define GQ_PUTTERS 1

static inline uint32_t *gq_waiting(gq_header *h, int side) {
    return side == GQ_GETTERS ? &h->waiting_getters : &h->waiting_putters;
}

static inline int gq_register(gq_header *h, int side, uint64_t need, uint64_t nmsg) {
    int32_t pid = (int32_t)getpid();
    (*gq_waiting(h, side))++;
    for (int i = 0; i < GQ_MAX_WAITERS; i++) {
        if (h->waiter_pid[side][i] == 0) {
            h->waiter_pid[side][i] = pid;
            if (side == GQ_PUTTERS) {
                h->waiter_need[i] = need;
                h->waiter_nmsg[i] = nmsg > UINT32_MAX ? UINT32_MAX : (uint32_t)nmsg;
            }
            return i;
        }
    }
    if (side == GQ_PUTTERS) h->untracked_putters++;
    return -1; /* table full: counted only */
}

static inline void gq_unregister(gq_header *h, int side, int slot) {
    uint32_t *w = gq_waiting(h, side);
    if (slot >= 0)
        h->waiter_pid[side][slot] = 0;
    else if (side == GQ_PUTTERS && h->untracked_putters)
        h->untracked_putters--;
    if (*w) (*w)--;
}

#define GQ_NOT_REGISTERED (-2)

/* Drop the registration a wait left when it could not re-take the lock (mutex held). */
static inline void gq_settle(gq_header *h, int side, int *reg) {
    if (*reg == GQ_NOT_REGISTERED) return;
    gq_unregister(h, side, *reg);
    *reg = GQ_NOT_REGISTERED;
}

/* The same for a caller that gives up (deadline, signal), without waiting for the lock: a
 * registration still left costs spurious wake-ups only, like a killed sleeper's. */
static inline void gq_settle_try(void *mem, int side, int *reg) {
    gq_header *h = (gq_header *)mem;
    if (*reg == GQ_NOT_REGISTERED || gq_trylock(h)) return;
    gq_settle(h, side, reg);
    gq_unlock(h);
}

/* A waiter's lock (put or get, `side`): 0 = locked, with any registration an earlier call left
 * dropped; `gave_up` (GQ_FULL or GQ_EMPTY) when the lock stayed held past the deadline;
 * GQ_AGAIN when it stayed held for a slice before it; or an error. */
static inline int gq_lock_waiter(gq_header *h, int side, int *reg, int64_t deadline_ns,
                                 int gave_up) {
    int r = gq_lock_slice(h);
    if (r == GQ_AGAIN) return gq_past(deadline_ns) ? gave_up : GQ_AGAIN;
    if (r) return r;
    gq_settle(h, side, reg);
    return 0;
}

/* Whether some sleeping putter's batch fits in state s (mutex held). */
static inline int gq_putter_fits(const gq_header *h, const gq_state *s) {
    if (h->waiting_putters == 0) return 0;
    if (h->untracked_putters) return 1;
    uint64_t free_bytes = h->capacity - (s->tail - s->head);
    for (int i = 0; i < GQ_MAX_WAITERS; i++) {
        if (h->waiter_pid[GQ_PUTTERS][i] == 0) continue;
        if (h->waiter_need[i] <= free_bytes &&
            (h->maxsize == 0 || s->count + h->waiter_nmsg[i] <= h->maxsize))
            return 1;
    }
    /* registrations of killed putters may linger until reaped: never starve a live one */
    return 0;
}

/*
 * Wake-ups of getters are rationed: a getter already woken (and about to run) will take
 * what arrives meanwhile, so puts only wake sleepers beyond those pending. This turns a
 * wake-up per message into a wake-up per burst when consumers outnumber the work. A pending
 * count inflated by a getter killed right after its wake-up heals on the next sleeper's
 * time-out (it resets the count).
 */
static inline uint32_t gq_getters_to_wake(gq_header *h, uint64_t want) {
    uint32_t waiting = h->waiting_getters;
    uint32_t pending = __atomic_load_n(&h->wakes_pending, __ATOMIC_RELAXED);
    uint32_t avail = waiting > pending ? waiting - pending : 0;
    uint32_t k = want < avail ? (uint32_t)want : avail;
    if (k) __atomic_fetch_add(&h->wakes_pending, k, __ATOMIC_RELAXED);
    return k;
}

static inline void gq_pending_sub(gq_header *h, uint32_t k) {
    uint32_t cur = __atomic_load_n(&h->wakes_pending, __ATOMIC_RELAXED);
    while (cur) {
        uint32_t next = cur > k ? cur - k : 0;
        if (__atomic_compare_exchange_n(&h->wakes_pending, &cur, next, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            break;
    }
}

/* A wake-up found nobody asleep: forget registrations of processes that no longer exist. */
static inline void gq_reap(gq_header *h, int side) {
    if (gq_trylock(h)) return; /* busy: the next miss will do it */
    uint32_t *w = gq_waiting(h, side);
    for (int i = 0; i < GQ_MAX_WAITERS; i++) {
        int32_t pid = h->waiter_pid[side][i];
        if (pid > 0 && kill(pid, 0) == -1 && errno == ESRCH) {
            h->waiter_pid[side][i] = 0;
            if (*w) (*w)--;
        }
    }
    gq_unlock(h);
}

/* ---- ring copy helpers ------------------------------------------------------------------- */
static inline void gq_ring_write(gq_header *h, uint64_t pos, const char *src, uint64_t n) {
    uint64_t cap = h->capacity, off = pos % cap, first = cap - off;
    char *ring = gq_ring(h);
    if (n <= first) {
        memcpy(ring + off, src, n);
    } else {
        memcpy(ring + off, src, first);
        memcpy(ring, src + first, n - first);
    }
}

static inline void gq_ring_read(gq_header *h, uint64_t pos, char *dst, uint64_t n) {
    uint64_t cap = h->capacity, off = pos % cap, first = cap - off;
    const char *ring = gq_ring(h);
    if (n <= first) {
        memcpy(dst, ring + off, n);
    } else {
        memcpy(dst, ring + off, first);
        memcpy(dst + first, ring, n - first);
    }
}

/* ---- setup ------------------------------------------------------------------------------- */

/* Ring capacity a block of `total` bytes provides. */
static inline uint64_t gq_capacity_for(uint64_t total) {
    if (total <= GQ_HEADER_SIZE + 8) return 0;
    return (total - GQ_HEADER_SIZE) & ~(uint64_t)7u;
}

/* Initialise a zeroed block of `total` bytes as an empty queue. Returns GQ_OK or GQ_ERROR. */
static inline int gq_init(void *mem, uint64_t total, uint64_t maxsize) {
    gq_header *h = (gq_header *)mem;
    pthread_mutexattr_t attr;
    uint64_t cap = gq_capacity_for(total);
    if (cap < 16) return GQ_BAD_BLOCK;
    memset(h, 0, GQ_HEADER_SIZE);
    h->version = GQ_VERSION;
    h->header_size = GQ_HEADER_SIZE;
    h->capacity = cap;
    h->maxsize = maxsize;
    h->total_size = total;
    if (pthread_mutexattr_init(&attr)) return GQ_ERROR;
    if (pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) ||
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) ||
        pthread_mutex_init(&h->mutex, &attr)) {
        pthread_mutexattr_destroy(&attr);
        return GQ_ERROR;
    }
    pthread_mutexattr_destroy(&attr);
    __atomic_store_n(&h->magic, GQ_MAGIC, __ATOMIC_RELEASE); /* last: block is ready */
    return GQ_OK;
}

static inline int gq_validate(const void *mem, uint64_t total) {
    const gq_header *h = (const gq_header *)mem;
    if (total < GQ_HEADER_SIZE) return GQ_BAD_BLOCK;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != GQ_MAGIC) return GQ_BAD_BLOCK;
    if (h->version != GQ_VERSION || h->header_size != GQ_HEADER_SIZE) return GQ_BAD_BLOCK;
    if (h->total_size > total || h->capacity + GQ_HEADER_SIZE > total) return GQ_BAD_BLOCK;
    return GQ_OK;
}

/* ---- put --------------------------------------------------------------------------------- */

/* Bytes the batch takes in the ring, or GQ_TOO_BIG-worthy if it can never fit. */
static inline int gq_put_check(const gq_header *h, const gq_msg *msgs, size_t n,
                               uint64_t *need_out) {
    uint64_t need = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t len = msgs[i].alen + msgs[i].blen;
        if (len > GQ_MAX_MSG_LEN) return GQ_TOO_BIG;
        need += 8 + gq_round8(len);
    }
    *need_out = need;
    if (need > h->capacity) return GQ_TOO_BIG;
    if (h->maxsize && n > h->maxsize) return GQ_TOO_BIG;
    return GQ_OK;
}

static inline int gq_fits(const gq_header *h, const gq_state *s, uint64_t need, size_t n) {
    if (s->tail - s->head + need > h->capacity) return 0;
    if (h->maxsize && s->count + n > h->maxsize) return 0;
    return 1;
}

/* Write and commit the batch; the mutex is held and the batch fits. Returns getters to wake. */
static inline uint32_t gq_put_locked(gq_header *h, const gq_msg *msgs, size_t n) {
    uint32_t cur = h->cur;
    gq_state s = h->state[cur];
    uint64_t pos = s.tail;
    for (size_t i = 0; i < n; i++) {
        uint64_t len = msgs[i].alen + msgs[i].blen;
        uint32_t rec[2] = {(uint32_t)len, msgs[i].meta};
        gq_ring_write(h, pos, (const char *)rec, 8);
        if (msgs[i].alen) gq_ring_write(h, pos + 8, msgs[i].a, msgs[i].alen);
        if (msgs[i].blen) gq_ring_write(h, pos + 8 + msgs[i].alen, msgs[i].b, msgs[i].blen);
        pos += 8 + gq_round8(len);
    }
    if (gq_debug_put_pause_s > 0) { /* test hook: die here and the batch must vanish */
        struct timespec ts;
        ts.tv_sec = (time_t)gq_debug_put_pause_s;
        ts.tv_nsec = (long)((gq_debug_put_pause_s - (double)ts.tv_sec) * 1e9);
        __atomic_store_n(&h->debug_holder, (int32_t)getpid(), __ATOMIC_SEQ_CST);
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
        }
        __atomic_store_n(&h->debug_holder, 0, __ATOMIC_SEQ_CST);
    }
    s.tail = pos;
    s.count += n;
    h->state[cur ^ 1u] = s;
    __atomic_store_n(&h->cur, cur ^ 1u, __ATOMIC_RELEASE); /* the commit */
    h->total_put += n;
    __atomic_fetch_add(&h->seq_not_empty, 1u, __ATOMIC_RELEASE);
    return gq_getters_to_wake(h, n);
}

/* Wake k getters counted as pending by gq_getters_to_wake (lock released). */
static inline void gq_wake_getters(gq_header *h, uint32_t k) {
    long r = gq_futex_wake(&h->seq_not_empty, (int)k);
    if (r < (long)k) gq_pending_sub(h, k - (uint32_t)(r > 0 ? r : 0));
    if (r <= 0) gq_reap(h, GQ_GETTERS);
}

static inline void gq_after_put(gq_header *h, uint32_t getters, size_t n) {
    (void)n;
    if (getters) gq_wake_getters(h, getters);
}

/* Non-blocking attempt; never sleeps (GQ_BUSY if another process holds the lock). */
static inline int gq_put_try(void *mem, const gq_msg *msgs, size_t n) {
    gq_header *h = (gq_header *)mem;
    uint64_t need;
    int r = gq_put_check(h, msgs, n, &need);
    if (r) return r;
    r = gq_trylock(h);
    if (r) return r == GQ_BUSY ? GQ_BUSY : GQ_ERROR;
    if (!gq_fits(h, &h->state[h->cur], need, n)) {
        gq_unlock(h);
        return GQ_FULL;
    }
    uint32_t getters = gq_put_locked(h, msgs, n);
    gq_unlock(h);
    gq_after_put(h, getters, n);
    return GQ_OK;
}

/*
 * Blocking put until `deadline_ns` (CLOCK_MONOTONIC; < 0 = no deadline, 0 = do not wait).
 * Returns GQ_OK, GQ_FULL (deadline passed), GQ_AGAIN (a slice passed: call again) or errors.
 * `*reg` (GQ_NOT_REGISTERED before the first call) carries a sleeper registration from a
 * call that could not re-take the lock to the next call, which drops it; a caller that gives
 * up calls gq_settle_try. A lock held past a slice gives up only after the deadline, so
 * even a non-blocking put waits one slice for a holder that is slow, not stopped.
 */
static inline int gq_put_wait(void *mem, const gq_msg *msgs, size_t n, int64_t deadline_ns,
                              int *reg) {
    gq_header *h = (gq_header *)mem;
    uint64_t need;
    int r = gq_put_check(h, msgs, n, &need);
    if (r) return r;
    r = gq_lock_waiter(h, GQ_PUTTERS, reg, deadline_ns, GQ_FULL);
    if (r) return r;
    if (!gq_fits(h, &h->state[h->cur], need, n)) {
        int64_t wait = GQ_WAIT_SLICE_NS;
        if (deadline_ns >= 0) {
            int64_t left = deadline_ns - gq_now_ns();
            if (left <= 0) {
                gq_unlock(h);
                return GQ_FULL;
            }
            if (left < wait) wait = left;
        }
        uint32_t seq = __atomic_load_n(&h->seq_not_full, __ATOMIC_ACQUIRE);
        *reg = gq_register(h, GQ_PUTTERS, need, n);
        gq_unlock(h);
        gq_futex_wait(&h->seq_not_full, seq, wait);
        r = gq_lock_waiter(h, GQ_PUTTERS, reg, deadline_ns, GQ_FULL);
        if (r) return r;
        if (!gq_fits(h, &h->state[h->cur], need, n)) {
            gq_unlock(h);
            return GQ_AGAIN;
        }
    }
    uint32_t getters = gq_put_locked(h, msgs, n);
    gq_unlock(h);
    gq_after_put(h, getters, n);
    return GQ_OK;
}

/* ---- get --------------------------------------------------------------------------------- */

/* Per-thread receive buffer (records copied out of the ring, ring format). */
typedef struct {
    char *data;
    uint64_t size;
} gq_rbuf;

static pthread_key_t gq_rbuf_key;
static pthread_once_t gq_rbuf_once = PTHREAD_ONCE_INIT;

static void gq_rbuf_free(void *p) {
    gq_rbuf *b = (gq_rbuf *)p;
    if (b) {
        free(b->data);
        free(b);
    }
}

static void gq_rbuf_make_key(void) { pthread_key_create(&gq_rbuf_key, gq_rbuf_free); }

static inline gq_rbuf *gq_rbuf_get(uint64_t need) {
    pthread_once(&gq_rbuf_once, gq_rbuf_make_key);
    gq_rbuf *b = (gq_rbuf *)pthread_getspecific(gq_rbuf_key);
    if (!b) {
        b = (gq_rbuf *)calloc(1, sizeof(gq_rbuf));
        if (!b) return NULL;
        pthread_setspecific(gq_rbuf_key, b);
    }
    if (b->size < need) {
        uint64_t sz = b->size ? b->size : 4096;
        while (sz < need) sz += sz / 2 + 8;
        char *d = (char *)realloc(b->data, sz);
        if (!d) return NULL;
        b->data = d;
        b->size = sz;
    }
    return b;
}

/*
 * Take up to max_msgs messages (and, past the first, at most max_bytes of records;
 * 0 = unlimited) into the calling thread's buffer; the mutex is held and the queue is not
 * empty. Returns GQ_OK or GQ_NOMEM; wake_putters and wake_getters say whom to wake.
 */
static inline int gq_get_locked(gq_header *h, uint64_t max_msgs, uint64_t max_bytes,
                                char **out, uint64_t *out_bytes, uint64_t *out_n,
                                uint32_t *wake_putters, uint32_t *wake_getters) {
    uint32_t cur = h->cur;
    gq_state s = h->state[cur];
    uint64_t pos = s.head, n = 0;
    char *ring = gq_ring(h);
    while (n < max_msgs && pos < s.tail) {
        const uint32_t *rec = (const uint32_t *)(ring + pos % h->capacity);
        uint64_t rb = 8 + gq_round8(rec[0]);
        if (n > 0 && max_bytes && pos - s.head + rb > max_bytes) break;
        pos += rb;
        n++;
    }
    uint64_t bytes = pos - s.head;
    gq_rbuf *b = gq_rbuf_get(bytes);
    if (!b) return GQ_NOMEM;
    gq_ring_read(h, s.head, b->data, bytes);
    s.head = pos;
    s.count -= n;
    h->state[cur ^ 1u] = s;
    __atomic_store_n(&h->cur, cur ^ 1u, __ATOMIC_RELEASE); /* the commit */
    h->total_got += n;
    __atomic_fetch_add(&h->seq_not_full, 1u, __ATOMIC_RELEASE);
    *out = b->data;
    *out_bytes = bytes;
    *out_n = n;
    *wake_putters = gq_putter_fits(h, &s);
    /* pass the baton: more left and others asleep (their wake-up may have gone to us) */
    *wake_getters = (s.count > 0) ? gq_getters_to_wake(h, 1) : 0;
    return GQ_OK;
}

static inline void gq_after_get(gq_header *h, uint32_t putters, uint32_t getters) {
    if (putters) __atomic_fetch_add(&h->putter_wakeups, 1u, __ATOMIC_RELAXED);
    if (putters && gq_futex_wake(&h->seq_not_full, INT_MAX) == 0) gq_reap(h, GQ_PUTTERS);
    if (getters) gq_wake_getters(h, getters);
}

/*
 * Non-blocking attempt for a caller that holds the GIL: GQ_BUSY if the lock is taken or
 * if the first message is larger than `max_fast_bytes` (copy it with the GIL released).
 */
static inline int gq_get_try(void *mem, uint64_t max_msgs, uint64_t max_bytes,
                             uint64_t max_fast_bytes, char **out, uint64_t *out_bytes,
                             uint64_t *out_n) {
    gq_header *h = (gq_header *)mem;
    uint32_t wp, wg;
    int r = gq_trylock(h);
    if (r) return r == GQ_BUSY ? GQ_BUSY : GQ_ERROR;
    gq_state *s = &h->state[h->cur];
    if (s->count == 0) {
        gq_unlock(h);
        return GQ_EMPTY;
    }
    if (((const uint32_t *)(gq_ring(h) + s->head % h->capacity))[0] > max_fast_bytes) {
        gq_unlock(h);
        return GQ_BUSY;
    }
    if (max_bytes == 0 || max_bytes > max_fast_bytes) max_bytes = max_fast_bytes;
    r = gq_get_locked(h, max_msgs, max_bytes, out, out_bytes, out_n, &wp, &wg);
    gq_unlock(h);
    if (r == GQ_OK) gq_after_get(h, wp, wg);
    return r;
}

static inline int gq_get_wait(void *mem, uint64_t max_msgs, uint64_t max_bytes,
                              int64_t deadline_ns, char **out, uint64_t *out_bytes,
                              uint64_t *out_n, int *reg) {
    gq_header *h = (gq_header *)mem;
    uint32_t wp, wg;
    int r = gq_lock_waiter(h, GQ_GETTERS, reg, deadline_ns, GQ_EMPTY);
    if (r) return r;
    if (h->state[h->cur].count == 0) {
        int64_t wait = GQ_WAIT_SLICE_NS;
        if (deadline_ns >= 0) {
            int64_t left = deadline_ns - gq_now_ns();
            if (left <= 0) {
                gq_unlock(h);
                return GQ_EMPTY;
            }
            if (left < wait) wait = left;
        }
        uint32_t seq = __atomic_load_n(&h->seq_not_empty, __ATOMIC_ACQUIRE);
        *reg = gq_register(h, GQ_GETTERS, 0, 0);
        gq_unlock(h);
        int fr = gq_futex_wait(&h->seq_not_empty, seq, wait);
        int ferr = errno;
        if (fr == 0)
            gq_pending_sub(h, 1); /* our wake-up has arrived */
        else if (ferr == ETIMEDOUT)
            __atomic_store_n(&h->wakes_pending, 0, __ATOMIC_RELAXED); /* heal a stale count */
        r = gq_lock_waiter(h, GQ_GETTERS, reg, deadline_ns, GQ_EMPTY);
        if (r) return r;
        if (h->state[h->cur].count == 0) {
            gq_unlock(h);
            return GQ_AGAIN;
        }
    }
    r = gq_get_locked(h, max_msgs, max_bytes, out, out_bytes, out_n, &wp, &wg);
    gq_unlock(h);
    if (r == GQ_OK) gq_after_get(h, wp, wg);
    return r;
}

/* ---- zero-staging get for a caller holding the GIL ------------------------------------------
 * gq_hold_try() takes the lock without waiting and exposes [head, tail); the caller copies
 * records straight into the objects it returns (gq_read_at), then gq_release_commit() removes
 * what it took, or gq_release() leaves everything queued. Between the two the caller may
 * allocate but must not run arbitrary Python code (nothing may wait for this lock).
 */
static inline int gq_hold_try(void *mem, uint64_t *head, uint64_t *tail) {
    gq_header *h = (gq_header *)mem;
    int r = gq_trylock(h);
    if (r) return r == GQ_BUSY ? GQ_BUSY : GQ_ERROR;
    gq_state *s = &h->state[h->cur];
    if (s->count == 0) {
        gq_unlock(h);
        return GQ_EMPTY;
    }
    *head = s->head;
    *tail = s->tail;
    return GQ_OK;
}

/* Record header at pos (lock held). */
static inline void gq_record_at(void *mem, uint64_t pos, uint32_t *len, uint32_t *meta) {
    gq_header *h = (gq_header *)mem;
    const uint32_t *rec = (const uint32_t *)(gq_ring(h) + pos % h->capacity);
    *len = rec[0];
    *meta = rec[1];
}

/* Copy n payload bytes of the record at pos, from payload offset off (lock held). */
static inline void gq_read_at(void *mem, uint64_t pos, uint64_t off, char *dst, uint64_t n) {
    gq_ring_read((gq_header *)mem, pos + 8 + off, dst, n);
}

static inline void gq_release(void *mem) { gq_unlock((gq_header *)mem); }

/* Remove the n records before new_head, unlock, wake. */
static inline void gq_release_commit(void *mem, uint64_t new_head, uint64_t n) {
    gq_header *h = (gq_header *)mem;
    uint32_t cur = h->cur;
    gq_state s = h->state[cur];
    s.head = new_head;
    s.count -= n;
    h->state[cur ^ 1u] = s;
    __atomic_store_n(&h->cur, cur ^ 1u, __ATOMIC_RELEASE); /* the commit */
    h->total_got += n;
    __atomic_fetch_add(&h->seq_not_full, 1u, __ATOMIC_RELEASE);
    uint32_t wp = gq_putter_fits(h, &s);
    uint32_t wg = (s.count > 0) ? gq_getters_to_wake(h, 1) : 0;
    gq_unlock(h);
    gq_after_get(h, wp, wg);
}

/* ---- inspection -------------------------------------------------------------------------- */
typedef struct {
    uint64_t count, used_bytes, capacity, maxsize, recoveries, total_put, total_got;
    uint64_t putter_wakeups;
    uint32_t waiting_getters, waiting_putters;
    int32_t debug_holder;
} gq_stats_t;

/* GQ_OK, GQ_AGAIN (the lock was held for a slice: check signals, call again) or GQ_ERROR. */
static inline int gq_stats(void *mem, gq_stats_t *out) {
    gq_header *h = (gq_header *)mem;
    int r = gq_lock_slice(h);
    if (r) return r;
    gq_state s = h->state[h->cur];
    out->count = s.count;
    out->used_bytes = s.tail - s.head;
    out->capacity = h->capacity;
    out->maxsize = h->maxsize;
    out->recoveries = h->recoveries;
    out->total_put = h->total_put;
    out->total_got = h->total_got;
    out->waiting_getters = h->waiting_getters;
    out->waiting_putters = h->waiting_putters;
    out->putter_wakeups = h->putter_wakeups;
    gq_unlock(h);
    out->debug_holder = __atomic_load_n(&h->debug_holder, __ATOMIC_SEQ_CST);
    return GQ_OK;
}

/* Fixed at creation: read without the lock. */
static inline uint64_t gq_capacity_of(void *mem) { return ((gq_header *)mem)->capacity; }
static inline uint64_t gq_maxsize_of(void *mem) { return ((gq_header *)mem)->maxsize; }

/* Lock-free peek at the pid paused by the test hook (the mutex is held by it). */
static inline int32_t gq_debug_holder(void *mem) {
    return __atomic_load_n(&((gq_header *)mem)->debug_holder, __ATOMIC_SEQ_CST);
}

#endif /* GRISTMILL_SHMQUEUE_CORE_H */
