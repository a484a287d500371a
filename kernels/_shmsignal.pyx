# cython: language_level=3
"""Process-shared semaphores and atomic counters placed in a caller's shared buffer.

See :mod:`gristmill.kernels.shmsignal` for the public documentation.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EAGAIN, EINTR, ETIMEDOUT, errno
from libc.stdint cimport int64_t, uintptr_t

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_REALTIME

cdef extern from "<semaphore.h>" nogil:
    ctypedef struct sem_t:
        pass
    int sem_init(sem_t *sem, int pshared, unsigned int value)
    int sem_destroy(sem_t *sem)
    int sem_post(sem_t *sem)
    int sem_trywait(sem_t *sem)
    int sem_timedwait(sem_t *sem, const timespec *abstime)
    int sem_getvalue(sem_t *sem, int *sval)

cdef extern from *:
    """
    static inline int64_t gm_fetch_add(int64_t *p, int64_t v) {
        return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
    }
    static inline int64_t gm_load(int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void gm_store(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void gm_pause(void) {
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
    #elif defined(__aarch64__)
        __asm__ __volatile__("yield");
    #endif
    }
    """
    int64_t gm_fetch_add(int64_t *p, int64_t v) nogil
    int64_t gm_load(int64_t *p) nogil
    void gm_store(int64_t *p, int64_t v) nogil
    void gm_pause() nogil

# One cache line per semaphore and per counter, so that neighbours never share a line.
cdef enum:
    STRIDE = 64
# Blocking waits wake up this often to let Python handle signals (Ctrl-C).
cdef enum:
    SLICE_NS = 100000000


def nbytes(int n_sems, int n_counters):
    """Bytes of buffer needed for ``n_sems`` semaphores and ``n_counters`` counters."""
    if n_sems < 0 or n_counters < 0:
        raise ValueError("counts must be >= 0")
    return (n_sems + n_counters) * STRIDE + STRIDE  # + slack for 64-byte alignment


cdef class SignalSet:
    """``n_sems`` process-shared POSIX semaphores and ``n_counters`` atomic int64 counters.

    They live in ``buffer`` (a writable, C-contiguous byte buffer such as a shared-memory
    numpy array of at least :func:`nbytes` bytes). The creator passes ``init=True`` once
    (``sem_init(pshared=1)``, counters zeroed); other processes that map the same memory wrap
    it with ``init=False``. Nothing is named, so nothing can leak in ``/dev/shm`` beyond the
    buffer's own segment.
    """

    cdef object _buffer
    cdef char *_base
    cdef readonly int n_sems
    cdef readonly int n_counters
    cdef bint _owner
    cdef bint _destroyed

    def __cinit__(self, buffer, int n_sems, int n_counters, bint init=False):
        cdef unsigned char[::1] view = buffer
        if n_sems < 0 or n_counters < 0:
            raise ValueError("counts must be >= 0")
        if view.shape[0] < nbytes(n_sems, n_counters):
            raise ValueError(
                f"buffer of {view.shape[0]} bytes is too small for {n_sems} semaphores and "
                f"{n_counters} counters ({nbytes(n_sems, n_counters)} bytes needed)"
            )
        self._buffer = buffer
        cdef uintptr_t p = <uintptr_t> &view[0]
        p = (p + STRIDE - 1) & ~(<uintptr_t> (STRIDE - 1))
        self._base = <char *> p
        self.n_sems = n_sems
        self.n_counters = n_counters
        self._owner = init
        self._destroyed = False
        cdef int i
        if init:
            for i in range(n_sems):
                if sem_init(self._sem(i), 1, 0) != 0:
                    raise OSError(errno, "sem_init failed")
            for i in range(n_counters):
                gm_store(self._ctr(i), 0)

    cdef inline sem_t *_sem(self, int i) nogil:
        return <sem_t *> (self._base + i * STRIDE)

    cdef inline int64_t *_ctr(self, int i) nogil:
        return <int64_t *> (self._base + (self.n_sems + i) * STRIDE)

    cdef inline void _check_sem(self, int i) except *:
        if self._destroyed:
            raise ValueError("SignalSet is destroyed")
        if i < 0 or i >= self.n_sems:
            raise IndexError(f"semaphore {i} out of range [0, {self.n_sems})")

    cdef inline void _check_ctr(self, int i) except *:
        if self._destroyed:
            raise ValueError("SignalSet is destroyed")
        if i < 0 or i >= self.n_counters:
            raise IndexError(f"counter {i} out of range [0, {self.n_counters})")

    def post(self, int i, int n=1):
        """Add ``n`` to semaphore ``i`` (wakes up to ``n`` waiters)."""
        self._check_sem(i)
        cdef sem_t *s = self._sem(i)
        cdef int k
        for k in range(n):
            if sem_post(s) != 0:
                raise OSError(errno, "sem_post failed")

    def trywait(self, int i):
        """Take one unit of semaphore ``i`` if available; returns whether it did."""
        self._check_sem(i)
        return sem_trywait(self._sem(i)) == 0

    def wait(self, int i, timeout=None, long spin=0):
        """Take one unit of semaphore ``i``, blocking (GIL released) up to ``timeout`` seconds
        (``None``: forever). First tries ``spin`` times without sleeping (a short spin pays
        off when the post is microseconds away and a core is free; keep it 0 when cores are
        oversubscribed). Returns False on timeout. Python signal handlers run while waiting,
        so Ctrl-C raises ``KeyboardInterrupt`` here.
        """
        self._check_sem(i)
        cdef sem_t *s = self._sem(i)
        cdef long k
        cdef int rc = -1
        cdef int err = 0
        cdef double tmo = -1.0 if timeout is None else float(timeout)
        cdef timespec now, until
        cdef long long left_ns, step_ns
        with nogil:
            for k in range(spin):
                if sem_trywait(s) == 0:
                    rc = 0
                    break
                gm_pause()
        if rc == 0:
            return True
        if tmo >= 0:
            left_ns = <long long> (tmo * 1e9)
        else:
            left_ns = -1
        while True:
            step_ns = SLICE_NS if (left_ns < 0 or left_ns > SLICE_NS) else left_ns
            with nogil:
                clock_gettime(CLOCK_REALTIME, &now)
                until.tv_sec = now.tv_sec + <time_t> (step_ns // 1000000000)
                until.tv_nsec = now.tv_nsec + <long> (step_ns % 1000000000)
                if until.tv_nsec >= 1000000000:
                    until.tv_sec += 1
                    until.tv_nsec -= 1000000000
                rc = sem_timedwait(s, &until)
                err = errno if rc != 0 else 0
            if rc == 0:
                return True
            if err != ETIMEDOUT and err != EINTR and err != EAGAIN:
                raise OSError(err, "sem_timedwait failed")
            PyErr_CheckSignals()
            if left_ns >= 0:
                if err == ETIMEDOUT:
                    left_ns -= step_ns
                if left_ns <= 0:
                    return sem_trywait(s) == 0

    def value(self, int i):
        """Current value of semaphore ``i`` (a snapshot)."""
        self._check_sem(i)
        cdef int v = 0
        sem_getvalue(self._sem(i), &v)
        return v

    def fetch_add(self, int i, int64_t v=1):
        """Atomically add ``v`` to counter ``i``; returns the value before."""
        self._check_ctr(i)
        return gm_fetch_add(self._ctr(i), v)

    def load(self, int i):
        """Atomic read of counter ``i``."""
        self._check_ctr(i)
        return gm_load(self._ctr(i))

    def store(self, int i, int64_t v):
        """Atomic write of counter ``i``."""
        self._check_ctr(i)
        gm_store(self._ctr(i), v)

    def destroy(self):
        """``sem_destroy`` every semaphore (creator only, once nobody waits any more)."""
        cdef int i
        if self._destroyed:
            return
        self._destroyed = True
        if self._owner:
            for i in range(self.n_sems):
                sem_destroy(self._sem(i))
        self._buffer = None
