/* The env pool's output-slot book in C: claim and publish, each one atomic instruction.
 *
 * Shared by samplers/_slots.pyx (the Python-facing Slots) and samplers/_worker_loop.pyx (the
 * worker's compiled loop), so both write the protocol the same way; see _slots.pyx's module
 * docstring for the protocol and why every fact is one atomic write.
 */
#ifndef GRISTMILL_SLOTS_CORE_H
#define GRISTMILL_SLOTS_CORE_H

#include <stdint.h>

#define GM_TAG_SHIFT 16

static inline int64_t gm_load64(int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gm_store64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t gm_loadu(uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

static inline uint64_t gm_full_word(int64_t k, int64_t n) {
    /* word k's bits when n slots of its block are expected */
    int64_t bits = n - 64 * k;
    if (bits >= 64) return ~(uint64_t)0;
    return ((uint64_t)1 << bits) - 1;
}

/* Take the lowest free slot for `worker`: one compare-and-swap of its tag is the claim and its
 * record. Returns the slot's sequence number. */
static inline int64_t gm_slot_claim(int64_t *tags, int64_t *cursor, int64_t n_slots,
                                    int64_t worker) {
    int64_t s = gm_load64(cursor);
    int64_t old, c;
    int64_t *p;
    for (;;) {
        p = tags + s % n_slots;
        old = gm_load64(p);
        if ((old >> GM_TAG_SHIFT) >= s)
            s += 1; /* taken in this round already */
        else if (__atomic_compare_exchange_n(p, &old, (s << GM_TAG_SHIFT) | worker, 0,
                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
    }
    c = gm_load64(cursor);
    while (c <= s && !__atomic_compare_exchange_n(cursor, &c, s + 1, 0, __ATOMIC_ACQ_REL,
                                                  __ATOMIC_ACQUIRE))
        ;
    return s;
}

/* Mark slot `pos` of `block` (which expects `n` results) delivered: one fetch_or of its bit in
 * the block's mask row (`row` words per block: [words completed, word 0, word 1, ...]).
 * Returns 1 when this completed the block (the caller posts the block's semaphore). */
static inline int gm_slot_publish(uint64_t *masks, int64_t row, int64_t block, int64_t pos,
                                  int64_t n) {
    uint64_t *r = masks + block * row;
    int64_t k = pos >> 6;
    uint64_t bit = (uint64_t)1 << (pos & 63);
    uint64_t full = gm_full_word(k, n);
    uint64_t old = __atomic_fetch_or(r + 1 + k, bit, __ATOMIC_ACQ_REL);
    int64_t nw;
    if ((old & bit) || (old | bit) != full) return 0;
    nw = (n + 63) >> 6;
    return nw == 1 || (int64_t)__atomic_fetch_add(r, (uint64_t)1, __ATOMIC_ACQ_REL) + 1 == nw;
}

#endif
