# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The env pool worker's inner loop in C (see :mod:`._worker` for the protocol).

:meth:`StepLoop.run` takes this worker's ring items in order until the ring is empty. A step
of an env that has a *native step* (``env.native_step()``: a C function and its state, e.g.
the MuJoCo tasks' ``gristmill.envs._mujoco_step``) runs here without the GIL and without
Python: the action row from shared memory, the env's step writing the observation into the
output slot (or the staging row, async), then reward, flags, env id, step count and
``elapsed_step`` info, the publish (``slots_core.h``), and ``progress[P_TAIL]``. Everything
else -- resets, Python envs, envs with other info fields -- goes to the worker's Python
``run_item`` (``py_item``), item by item, through the same loop; a completed block is posted
through ``post`` (the worker's ``SignalSet.post``), once per block.

Native step ABI: ``int step(void *state, const void *action, void *obs)`` -> flags
``1`` terminated | ``2`` truncated, the reward a ``double`` at ``*(double *) state``; the action
in the env's action dtype, the observation row in its observation dtype.
"""

from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t
from libc.string cimport memcpy

import numpy as np

cdef extern from "slots_core.h" nogil:
    int64_t gm_load64(int64_t *p)
    void gm_store64(int64_t *p, int64_t v)
    int64_t gm_slot_claim(int64_t *tags, int64_t *cursor, int64_t n_slots, int64_t worker)
    int gm_slot_publish(uint64_t *masks, int64_t row, int64_t block, int64_t pos, int64_t n)

ctypedef int (*native_fn)(void *state, const void *action, void *obs) noexcept nogil

cdef enum:
    CMD_STEP = 0
    # run() stops: the ring is empty, the next item is Python's, a block to post, CMD_CLOSE
    EMPTY = 0
    PYTHON = 1
    POST = 2
    CLOSE = 3
    CMD_CLOSE = 2


cdef double _noop_reward = 0.0


cdef int _noop_step(void *state, const void *action, void *obs) noexcept nogil:
    (<double *> state)[0] = 0.0
    return 0


def noop_native_step():
    """``(function address, state address)`` of a native step that does nothing (reward 0,
    no flags, the observation left as it is): the pool's own cost per step, measured with
    it (``bench/pool_overhead.py``)."""
    return <uintptr_t> &_noop_step, <uintptr_t> &_noop_reward


cdef uintptr_t _addr(a, dtype, list keep) except 0:
    """Address of a C-contiguous array of ``dtype`` (kept alive in ``keep``)."""
    a = np.asarray(a)
    if a.dtype != np.dtype(dtype) or not a.flags.c_contiguous or a.size == 0:
        raise ValueError(f"expected a non-empty C-contiguous {np.dtype(dtype)} array, got "
                         f"{a.dtype} {a.shape}")
    keep.append(a)
    return <uintptr_t> a.ctypes.data


cdef class StepLoop:
    """Worker ``worker``'s loop over its ring. ``arrays``: the pool's shared arrays;
    ``layout``: ``(workers, blocks, batch, cap, sync)``; ``env_ids``: this worker's envs
    (local index ``k`` = position); ``natives``: per local env ``(fn, state)`` addresses or
    None; ``needs_reset`` (uint8) and ``elapsed`` (int32): per local env, shared with
    ``py_item``; ``stage``: the async staging row; ``info_elapsed``: the ``[R, B]`` int32
    ``elapsed_step`` info array the native steps fill, or None (then no env steps natively
    unless it has no info fields). Keep ``envs`` alive as long as the loop."""

    cdef object _keep
    cdef object py_item
    cdef object post
    cdef int64_t *ring
    cdef int64_t *head
    cdef int64_t *tail_p
    cdef int64_t cap, worker, n_blocks, batch, n_slots, mask_row, blk0, n_global
    cdef int64_t *tags
    cdef int64_t *cursor
    cdef uint64_t *masks
    cdef unsigned char *obs
    cdef unsigned char *stage
    cdef int64_t obs_bytes
    cdef float *rew
    cdef unsigned char *term
    cdef unsigned char *trunc
    cdef int32_t *env_id
    cdef int32_t *elapsed_out
    cdef int32_t *info_elapsed
    cdef int64_t *expected
    cdef unsigned char *act
    cdef int64_t act_bytes
    cdef int64_t *local  # global env id -> local index, -1: not ours
    cdef unsigned char *needs_reset
    cdef int32_t *elapsed
    cdef native_fn *fns
    cdef void **states
    cdef readonly int64_t tail
    cdef int64_t _post_block
    cdef readonly int64_t native_steps  # steps run here, without Python (for tests)

    def __cinit__(self, int64_t worker, arrays, layout, env_ids, natives, needs_reset,
                  elapsed, stage, info_elapsed, py_item, post, int64_t tail):
        n_workers, n_blocks, batch, cap, _sync = layout
        self.worker, self.n_blocks, self.batch, self.cap = worker, n_blocks, batch, cap
        self.blk0 = n_workers
        self.py_item, self.post = py_item, post
        keep = []
        self.ring = <int64_t *> _addr(arrays["ring"][worker], np.int64, keep)
        self.head = <int64_t *> _addr(arrays["head"][worker], np.int64, keep)
        self.tail_p = <int64_t *> _addr(arrays["progress"][worker], np.int64, keep)  # P_TAIL = 0
        tags = arrays["tags"]
        self.n_slots = tags.shape[0]
        self.tags = <int64_t *> _addr(tags, np.int64, keep)
        self.cursor = <int64_t *> _addr(arrays["cursor"], np.int64, keep)
        masks = arrays["masks"]
        self.mask_row = masks.shape[1]
        self.masks = <uint64_t *> _addr(masks, np.uint64, keep)
        obs = arrays["obs"]
        self.obs = <unsigned char *> _addr(obs, obs.dtype, keep)
        self.stage = <unsigned char *> _addr(stage, obs.dtype, keep)
        self.obs_bytes = np.asarray(stage).nbytes
        if obs.nbytes != self.obs_bytes * self.n_slots:
            raise ValueError("the staging row does not match the observation slots")
        self.rew = <float *> _addr(arrays["rew"], np.float32, keep)
        self.term = <unsigned char *> _addr(arrays["term"], np.bool_, keep)
        self.trunc = <unsigned char *> _addr(arrays["trunc"], np.bool_, keep)
        self.env_id = <int32_t *> _addr(arrays["env_id"], np.int32, keep)
        self.elapsed_out = <int32_t *> _addr(arrays["elapsed_step"], np.int32, keep)
        self.expected = <int64_t *> _addr(arrays["expected"], np.int64, keep)
        self.info_elapsed = NULL
        if info_elapsed is not None:
            self.info_elapsed = <int32_t *> _addr(info_elapsed, np.int32, keep)
        act = arrays["act"]
        self.n_global = act.shape[0]
        self.act = <unsigned char *> _addr(act, act.dtype, keep)
        self.act_bytes = act.nbytes // self.n_global
        local = np.full(self.n_global, -1, np.int64)
        for k, e in enumerate(env_ids):
            local[int(e)] = k
        self.local = <int64_t *> _addr(local, np.int64, keep)
        self.needs_reset = <unsigned char *> _addr(needs_reset, np.uint8, keep)
        self.elapsed = <int32_t *> _addr(elapsed, np.int32, keep)
        n = len(env_ids)
        if len(natives) != n or needs_reset.shape[0] != n or elapsed.shape[0] != n:
            raise ValueError("natives, needs_reset and elapsed need one entry per env")
        fns = np.zeros(n, np.uintp)
        states = np.zeros(n, np.uintp)
        for k, nat in enumerate(natives):
            if nat is not None:
                fns[k], states[k] = nat
        self.fns = <native_fn *> _addr(fns, np.uintp, keep)
        self.states = <void **> _addr(states, np.uintp, keep)
        self._keep = keep
        self.tail = tail
        self.native_steps = 0

    cdef int _native(self) noexcept nogil:
        """Run native items until the ring is empty (EMPTY), the next item is not native
        (PYTHON), a block completed (POST: ``_post_block``) or CMD_CLOSE (CLOSE)."""
        cdef int64_t *item
        cdef int64_t env, cmd, base, pos, k, s, block, i
        cdef unsigned char *row
        cdef int flags
        cdef bint dynamic
        while True:
            if self.tail == gm_load64(self.head):
                return EMPTY
            item = self.ring + 4 * (self.tail % self.cap)
            env, cmd, base, pos = item[0], item[1], item[2], item[3]
            if cmd == CMD_CLOSE:
                return CLOSE
            if not (0 <= env < self.n_global):
                return PYTHON  # Python reports the bad item
            k = self.local[env]
            if cmd != CMD_STEP or k < 0 or self.fns[k] == NULL or self.needs_reset[k]:
                return PYTHON
            dynamic = base < 0
            if dynamic:
                row = self.stage
            else:
                s = base + pos
                block, pos = (s // self.batch) % self.n_blocks, s % self.batch
                row = self.obs + (block * self.batch + pos) * self.obs_bytes
            flags = self.fns[k](self.states[k], self.act + env * self.act_bytes, row)
            self.elapsed[k] += 1
            if flags:
                self.needs_reset[k] = 1
            if dynamic:
                # async: the next free slot, claimed once the step is done (see _worker)
                s = gm_slot_claim(self.tags, self.cursor, self.n_slots, self.worker)
                block, pos = (s // self.batch) % self.n_blocks, s % self.batch
                memcpy(self.obs + (block * self.batch + pos) * self.obs_bytes, self.stage,
                       self.obs_bytes)
            i = block * self.batch + pos
            self.rew[i] = <float> (<double *> self.states[k])[0]
            self.term[i] = flags & 1
            self.trunc[i] = (flags >> 1) & 1
            self.env_id[i] = <int32_t> env
            self.elapsed_out[i] = self.elapsed[k]
            if self.info_elapsed != NULL:
                self.info_elapsed[i] = self.elapsed[k]
            self.native_steps += 1
            if gm_slot_publish(self.masks, self.mask_row, block, pos, self.expected[block]):
                self._post_block = block
                self.tail += 1
                gm_store64(self.tail_p, self.tail)
                return POST
            self.tail += 1
            gm_store64(self.tail_p, self.tail)

    def run(self):
        """Take items until the ring is empty (True) or CMD_CLOSE (False). Python items go
        to ``py_item(env_id, cmd, base, pos)``, which publishes its result itself."""
        cdef int rc
        cdef int64_t *item
        while True:
            with nogil:
                rc = self._native()
            if rc == EMPTY:
                return True
            if rc == CLOSE:
                return False
            if rc == POST:
                self.post(self.blk0 + self._post_block)
                continue
            item = self.ring + 4 * (self.tail % self.cap)
            self.py_item(item[0], item[1], item[2], item[3])
            # done once published (a restart reads that from the slot book)
            self.tail += 1
            gm_store64(self.tail_p, self.tail)
