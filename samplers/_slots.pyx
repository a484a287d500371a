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

A worker also writes its results through :meth:`Slots.put` (after
:meth:`Slots.attach_outputs`): the observation copied from its staging row, reward, flags, env
id and step count, then the publish, in one call instead of half a dozen NumPy stores.

Block ``b``'s row of ``masks`` is ``[words completed, word 0, word 1, ...]`` (``uint64``);
the main process clears it when it hands the block to the user, before any worker can write
the block's next round. Claim and publish are in ``slots_core.h``, which the worker's compiled
loop (:mod:`._worker_loop`) shares.
"""

from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy

import numpy as np

cdef extern from "slots_core.h" nogil:
    int64_t gm_load64(int64_t *p)
    uint64_t gm_loadu(uint64_t *p)
    uint64_t gm_full_word(int64_t k, int64_t n)
    int64_t gm_slot_claim(int64_t *tags, int64_t *cursor, int64_t n_slots, int64_t worker)
    int gm_slot_publish(uint64_t *masks, int64_t row, int64_t block, int64_t pos, int64_t n)

#: ``tag >> TAG_SHIFT`` is the slot's sequence number, ``tag & WORKER_MASK`` its claimer.
TAG_SHIFT = 16  # GM_TAG_SHIFT in slots_core.h
WORKER_MASK = (1 << 16) - 1


def mask_words(Py_ssize_t batch):
    """Columns of a block's ``masks`` row for ``batch`` slots: the completed-words counter
    and one 64-bit word per 64 slots."""
    return 1 + (batch + 63) // 64


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
    # outputs (attach_outputs): per slot i = block * batch + pos
    cdef object _out
    cdef float *_rew
    cdef unsigned char *_term
    cdef unsigned char *_trunc
    cdef int32_t *_env_id
    cdef int32_t *_elapsed
    cdef int64_t *_expected
    cdef unsigned char *_obs
    cdef unsigned char *_stage
    cdef Py_ssize_t _obs_bytes

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
        cdef int64_t s
        with nogil:
            s = gm_slot_claim(self._tags, self._cursor, self.n_slots, worker)
        return s

    def publish(self, Py_ssize_t block, Py_ssize_t pos, Py_ssize_t n):
        """Mark slot ``pos`` of ``block`` (which expects ``n`` results) delivered. True when
        this completed the block: the caller posts the block's semaphore."""
        return self._publish(block, pos, n)

    def attach_outputs(self, rew, term, trunc, env_id, elapsed, expected, obs, stage):
        """Let :meth:`put` write results: the shared ``[R, B]`` output arrays (``rew``
        float32, ``term``/``trunc`` bool, ``env_id``/``elapsed`` int32), ``expected``
        (int64 ``[R]``: results each block waits for), ``obs`` (``[R, B, ...]``) and this
        worker's staging row (one observation), all C-contiguous."""
        def flat(a, dtype):
            a = np.asarray(a)
            if not a.flags.c_contiguous:
                raise ValueError("output arrays must be C-contiguous")
            return a.reshape(-1).view(dtype)

        cdef float[::1] r = flat(rew, np.float32)
        cdef unsigned char[::1] te = flat(term, np.uint8)
        cdef unsigned char[::1] tr = flat(trunc, np.uint8)
        cdef int32_t[::1] e = flat(env_id, np.int32)
        cdef int32_t[::1] el = flat(elapsed, np.int32)
        cdef int64_t[::1] ex = flat(expected, np.int64)
        cdef unsigned char[::1] o = flat(obs, np.uint8)
        cdef unsigned char[::1] st = flat(stage, np.uint8)
        if not (r.shape[0] == te.shape[0] == tr.shape[0] == e.shape[0] == el.shape[0]
                == self.n_slots) or o.shape[0] != st.shape[0] * self.n_slots:
            raise ValueError("output arrays do not match the slot book's blocks")
        self._out = (r, te, tr, e, el, ex, o, st)
        self._rew, self._term, self._trunc = &r[0], &te[0], &tr[0]
        self._env_id, self._elapsed, self._expected = &e[0], &el[0], &ex[0]
        self._obs, self._stage, self._obs_bytes = &o[0], &st[0], st.shape[0]

    def put(self, Py_ssize_t block, Py_ssize_t pos, float rew, bint term, bint trunc,
            int32_t env_id, int32_t elapsed, bint copy_obs):
        """Write one result into slot ``pos`` of ``block`` (``copy_obs``: the observation
        from the staging row; else the env wrote it in place), then :meth:`publish` it.
        True when this completed the block: the caller posts the block's semaphore."""
        if self._out is None:
            raise RuntimeError("attach_outputs first")
        cdef Py_ssize_t i = block * self.batch + pos
        if copy_obs:
            memcpy(self._obs + i * self._obs_bytes, self._stage, self._obs_bytes)
        self._rew[i] = rew
        self._term[i] = term
        self._trunc[i] = trunc
        self._env_id[i] = env_id
        self._elapsed[i] = elapsed
        return self._publish(block, pos, self._expected[block])

    cdef bint _publish(self, Py_ssize_t block, Py_ssize_t pos, Py_ssize_t n):
        return gm_slot_publish(self._masks, self.row, block, pos, n)

    def ready(self, Py_ssize_t block, Py_ssize_t n):
        """Whether slots ``0..n-1`` of ``block`` all hold their results."""
        cdef uint64_t *row = self._masks + block * self.row
        cdef Py_ssize_t k
        cdef uint64_t full
        for k in range((n + 63) >> 6):
            full = gm_full_word(k, n)
            if (gm_loadu(row + 1 + k) & full) != full:
                return False
        return True

    def published(self, Py_ssize_t block, Py_ssize_t pos):
        """Whether slot ``pos`` of ``block`` holds its result."""
        return (gm_loadu(self._masks + block * self.row + 1 + (pos >> 6))
                >> (pos & 63)) & 1 == 1
