# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The env pool's output-slot book: who claimed which slot, which slots hold a result.

Every fact the pool's restart path needs is recorded by one atomic instruction, so a worker
killed (SIGKILL) between any two instructions leaves a state the main process can read
exactly (issue 21: the old protocol recorded "result counted" and "request done" in separate
writes, and a kill between them made a restart redo a request whose result was already
delivered, giving its env two results in flight):

* **Claim** (async mode): a worker takes the next free output slot with one compare-and-swap
  of the slot's tag, ``tag = s << TAG_SHIFT | worker`` (``s``: the slot's global sequence
  number, ``block = s // B % R``, ``pos = s % B``). The claim *is* its record: no window where
  a slot is taken but nobody knows by whom. ``cursor`` is only a hint where to start looking;
  a claimer always takes the lowest slot still free, so the claimed slots stay a prefix.
* **Publish**: after writing the result, the worker sets the slot's bit in its block's mask
  with one ``fetch_or``. A set bit is the only definition of "this result is delivered";
  setting it twice changes nothing. The worker whose bit completes the block (the last bit of
  its 64-bit word, and with more than 64 slots the last word, counted by ``fetch_add``) is
  told to post the block's semaphore. A worker killed after its bit but before that post only
  delays ``recv`` until it notices the death and reads the masks itself (:meth:`ready`).

Block ``b``'s row of ``masks`` is ``[words completed, word 0, word 1, ...]`` (``uint64``);
the main process clears it when it hands the block to the user, before any worker can write
the block's next round.
"""

from libc.stdint cimport int64_t, uint64_t

cdef extern from *:
    """
    static inline int gm_cas64(int64_t *p, int64_t *expected, int64_t desired) {
        return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE);
    }
    static inline int64_t gm_load64(int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline uint64_t gm_loadu(uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline uint64_t gm_fetch_or(uint64_t *p, uint64_t v) {
        return __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL);
    }
    static inline uint64_t gm_fetch_addu(uint64_t *p, uint64_t v) {
        return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
    }
    """
    int gm_cas64(int64_t *p, int64_t *expected, int64_t desired) nogil
    int64_t gm_load64(int64_t *p) nogil
    uint64_t gm_loadu(uint64_t *p) nogil
    uint64_t gm_fetch_or(uint64_t *p, uint64_t v) nogil
    uint64_t gm_fetch_addu(uint64_t *p, uint64_t v) nogil

#: ``tag >> TAG_SHIFT`` is the slot's sequence number, ``tag & WORKER_MASK`` its claimer.
TAG_SHIFT = 16
WORKER_MASK = (1 << 16) - 1
cdef enum:
    SHIFT = 16


def mask_words(Py_ssize_t batch):
    """Columns of a block's ``masks`` row for ``batch`` slots: the completed-words counter
    and one 64-bit word per 64 slots."""
    return 1 + (batch + 63) // 64


cdef inline uint64_t _full(Py_ssize_t k, Py_ssize_t n) nogil:
    """Word ``k``'s bits when ``n`` slots of its block are expected."""
    cdef Py_ssize_t bits = n - 64 * k
    if bits >= 64:
        return <uint64_t> 0xFFFFFFFFFFFFFFFF
    return ((<uint64_t> 1) << bits) - 1


cdef class Slots:
    """Atomic views of the pool's ``tags`` (``int64 [R * B]``, -1 when never claimed),
    ``cursor`` (``int64 [>= 1]``) and ``masks`` (``uint64 [R, mask_words(B)]``) arrays, which
    live in shared memory; every process builds its own ``Slots`` over them."""

    cdef object _keep
    cdef int64_t *_tags
    cdef int64_t *_cursor
    cdef uint64_t *_masks
    cdef readonly Py_ssize_t n_slots
    cdef readonly Py_ssize_t batch
    cdef readonly Py_ssize_t row

    def __cinit__(self, tags, cursor, masks, Py_ssize_t batch):
        cdef int64_t[::1] t = tags
        cdef int64_t[::1] c = cursor
        cdef uint64_t[:, ::1] m = masks
        if batch < 1 or t.shape[0] != m.shape[0] * batch or m.shape[1] != mask_words(batch):
            raise ValueError(f"inconsistent slot arrays: tags {t.shape[0]}, masks "
                             f"{m.shape[0]}x{m.shape[1]}, batch {batch}")
        self._keep = (tags, cursor, masks)
        self._tags = &t[0]
        self._cursor = &c[0]
        self._masks = &m[0, 0]
        self.n_slots = t.shape[0]
        self.batch = batch
        self.row = m.shape[1]

    def claim(self, int64_t worker):
        """Take the lowest free output slot for ``worker``; returns its sequence number."""
        cdef int64_t s = gm_load64(self._cursor)
        cdef int64_t old, c
        cdef int64_t *p
        with nogil:
            while True:
                p = self._tags + s % self.n_slots
                old = gm_load64(p)
                if (old >> SHIFT) >= s:
                    s += 1  # taken in this round already
                elif gm_cas64(p, &old, (s << SHIFT) | worker):
                    break
            c = gm_load64(self._cursor)
            while c <= s and not gm_cas64(self._cursor, &c, s + 1):
                pass
        return s

    def publish(self, Py_ssize_t block, Py_ssize_t pos, Py_ssize_t n):
        """Mark slot ``pos`` of ``block`` (which expects ``n`` results) delivered. True when
        this completed the block: the caller posts the block's semaphore."""
        cdef uint64_t *row = self._masks + block * self.row
        cdef Py_ssize_t k = pos >> 6
        cdef uint64_t bit = (<uint64_t> 1) << (pos & 63)
        cdef uint64_t full = _full(k, n)
        cdef uint64_t old = gm_fetch_or(row + 1 + k, bit)
        if (old & bit) or (old | bit) != full:
            return False
        cdef Py_ssize_t nw = (n + 63) >> 6
        return nw == 1 or <Py_ssize_t> gm_fetch_addu(row, 1) + 1 == nw

    def ready(self, Py_ssize_t block, Py_ssize_t n):
        """Whether slots ``0..n-1`` of ``block`` all hold their results."""
        cdef uint64_t *row = self._masks + block * self.row
        cdef Py_ssize_t k
        cdef uint64_t full
        for k in range((n + 63) >> 6):
            full = _full(k, n)
            if (gm_loadu(row + 1 + k) & full) != full:
                return False
        return True

    def published(self, Py_ssize_t block, Py_ssize_t pos):
        """Whether slot ``pos`` of ``block`` holds its result."""
        return (gm_loadu(self._masks + block * self.row + 1 + (pos >> 6))
                >> (pos & 63)) & 1 == 1
