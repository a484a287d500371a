# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython shell over ``shmqueue_core.h``: message encoding, GIL handling, stdlib exceptions.

Private: use :class:`gristmill.kernels.shmqueue.Queue`. The core returns status codes; this
shell turns them into ``queue.Full``/``queue.Empty``/``ValueError`` and releases the GIL
whenever it may wait (an uncontended, small put/get runs with the GIL held: it cannot block).

Wire format of one message: the core's record ``{uint32 len, uint32 meta}`` + payload, where
``meta`` is a type tag: bytes and bytearray go as they are, a plain ``np.ndarray`` of a simple
dtype as ``[u8 ndim][u8 len(dtype.str)][dtype.str][pad to 8][int64 shape[ndim]][C-order data]``,
anything else pickled (or through the queue's ``dumps``/``loads``).
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cimport numpy as cnp

import numbers
import pickle
import queue as _stdqueue

import numpy as np

cnp.import_array()

cdef extern from "Python.h":
    int PyGC_Disable()
    int PyGC_Enable()

cdef extern from "numpy/arrayobject.h":
    # steals a reference to descr
    object PyArray_Empty(int nd, cnp.npy_intp *dims, cnp.dtype descr, int fortran)

cdef extern from "shmqueue_core.h" nogil:
    int GQ_OK
    int GQ_EMPTY
    int GQ_FULL
    int GQ_BUSY
    int GQ_AGAIN
    int GQ_TOO_BIG
    int GQ_NOMEM
    int GQ_ERROR
    int GQ_BAD_BLOCK
    int GQ_NOT_REGISTERED
    int GQ_GETTERS
    int GQ_PUTTERS
    unsigned int GQ_HEADER_SIZE

    ctypedef struct gq_msg:
        const char *a
        uint64_t alen
        const char *b
        uint64_t blen
        uint32_t meta

    ctypedef struct gq_stats_t:
        uint64_t count, used_bytes, capacity, maxsize, recoveries, total_put, total_got
        uint64_t putter_wakeups
        uint32_t waiting_getters, waiting_putters
        int32_t debug_holder

    int64_t gq_now_ns()
    uint64_t gq_capacity_for(uint64_t total)
    int gq_init(void *mem, uint64_t total, uint64_t maxsize)
    int gq_validate(const void *mem, uint64_t total)
    int gq_put_try(void *mem, const gq_msg *msgs, size_t n)
    int gq_put_wait(void *mem, const gq_msg *msgs, size_t n, int64_t deadline_ns, int *reg)
    int gq_get_try(void *mem, uint64_t max_msgs, uint64_t max_bytes, uint64_t max_fast_bytes,
                   char **out, uint64_t *out_bytes, uint64_t *out_n)
    int gq_get_wait(void *mem, uint64_t max_msgs, uint64_t max_bytes, int64_t deadline_ns,
                    char **out, uint64_t *out_bytes, uint64_t *out_n, int *reg)
    void gq_settle_try(void *mem, int side, int *reg)
    uint64_t gq_capacity_of(void *mem)
    uint64_t gq_maxsize_of(void *mem)
    int gq_stats(void *mem, gq_stats_t *out)
    int32_t gq_debug_holder(void *mem)
    int gq_hold_try(void *mem, uint64_t *head, uint64_t *tail)
    void gq_record_at(void *mem, uint64_t pos, uint32_t *len, uint32_t *meta)
    void gq_read_at(void *mem, uint64_t pos, uint64_t off, char *dst, uint64_t n)
    void gq_release(void *mem)
    void gq_release_commit(void *mem, uint64_t new_head, uint64_t n)
    void gq_set_debug_put_pause(double s)

HEADER_SIZE = GQ_HEADER_SIZE

cdef enum:
    TAG_BYTES = 0
    TAG_BYTEARRAY = 1
    TAG_NDARRAY = 2
    TAG_PICKLE = 3

# Messages this large skip the GIL-held fast path: copying them takes long enough that other
# Python threads should run meanwhile.
cdef uint64_t FAST_PATH_MAX_BYTES = 256 * 1024
cdef int MAX_NDIM = 32
# get_many's default cap on the bytes taken per call (past the first message). Draining
# megabytes at once costs more per message (cold receive buffer, and malloc returning the
# freed result objects to the OS, then page-faulting them back in).
DEFAULT_GET_MANY_BYTES = 128 * 1024

cdef dict _DTYPE_CACHE = {}
cdef object _np_empty = np.empty
cdef object _np_ndarray = np.ndarray


def capacity_for(uint64_t total):
    """Ring bytes a shared block of ``total`` bytes provides (header excluded)."""
    return gq_capacity_for(total)


def set_debug_put_pause(double seconds):
    """Test hook: make this process's puts sleep inside the critical section, lock held."""
    gq_set_debug_put_pause(seconds)


cdef inline int64_t _deadline(bint block, object timeout) except? -2:
    """-1 = wait forever, else an absolute CLOCK_MONOTONIC deadline (0 = do not wait)."""
    cdef double t
    if not block:
        return 0
    if timeout is None:
        return -1
    try:
        t = timeout
    except TypeError:
        raise TypeError(f"'timeout' must be a number of seconds or None, got {timeout!r}") from None
    if not t >= 0:  # negative or NaN
        raise ValueError(f"'timeout' must be a non-negative number, got {timeout!r}")
    if t > 1e9:  # ~31 years: as good as forever, and no int64 overflow
        return -1
    return gq_now_ns() + <int64_t>(t * 1e9)


cdef object _array_header(object arr):
    """The ndarray header bytes, or None if this array must be pickled."""
    cdef cnp.ndarray a = <cnp.ndarray>arr
    cdef object dt = a.dtype
    cdef bytes dts
    cdef int ndim = a.ndim
    cdef int i, off
    cdef char buf[2 + 255 + 8 + 8 * 32]
    if dt.hasobject or dt.fields is not None or ndim > MAX_NDIM:
        return None
    dts = dt.str.encode("ascii")
    if len(dts) > 255:
        return None
    buf[0] = <char>ndim
    buf[1] = <char>len(dts)
    memcpy(buf + 2, PyBytes_AS_STRING(dts), len(dts))
    off = (2 + len(dts) + 7) & ~7
    for i in range(2 + len(dts), off):
        buf[i] = 0
    for i in range(ndim):
        (<int64_t *>(buf + off))[i] = a.shape[i]
    return PyBytes_FromStringAndSize(buf, off + 8 * ndim)


cdef object _decode_array(const char *p, uint64_t n):
    cdef int ndim = <uint8_t>p[0]
    cdef int dtlen = <uint8_t>p[1]
    cdef int off = (2 + dtlen + 7) & ~7
    cdef int i
    cdef uint64_t hdr = off + 8 * ndim
    cdef bytes key = PyBytes_FromStringAndSize(p + 2, dtlen)
    cdef int64_t dim
    cdef cnp.ndarray out
    dt = _DTYPE_CACHE.get(key)
    if dt is None:
        dt = np.dtype(key.decode("ascii"))
        _DTYPE_CACHE[key] = dt
    shape = []
    for i in range(ndim):
        memcpy(&dim, p + off + 8 * i, 8)
        shape.append(dim)
    out = _np_empty(tuple(shape), dt)
    if <uint64_t>out.nbytes != n - hdr:
        raise ValueError(f"corrupt array message: {n - hdr} data bytes for {out.nbytes}")
    if n > hdr:
        memcpy(cnp.PyArray_DATA(out), p + hdr, n - hdr)
    return out


cdef inline uint64_t _count(str name, object v, int lo) except? 0:
    """A cap given as ``v``: a whole number >= ``lo`` (TypeError/ValueError naming ``name``
    otherwise); anything past 2**62 is as good as no cap."""
    if type(v) is not int and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
        raise TypeError(f"{name} must be an int, got {v!r}")
    if v < lo:
        if lo == 0:
            raise ValueError(f"{name} must be >= 0 (0 = no cap), got {v}")
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return min(int(v), 1 << 62)


cdef class QueueCore:
    """Handle on a shared block laid out by ``shmqueue_core.h``. See ``shmqueue.Queue``."""

    cdef void *mem
    cdef uint64_t total
    cdef Py_buffer view
    cdef bint has_view
    cdef bint _closed
    cdef public object dumps
    cdef public object loads
    cdef bint default_dumps
    cdef bint default_loads

    def __cinit__(self):
        self.mem = NULL
        self.has_view = False
        self._closed = True

    def _bind(self, buffer, bint init, uint64_t maxsize=0, dumps=None, loads=None):
        """Map ``buffer`` (writable, shared) as a queue; ``init`` lays out a fresh one."""
        cdef int st
        if self.has_view:
            raise RuntimeError("queue handle already bound")
        PyObject_GetBuffer(buffer, &self.view, PyBUF_WRITABLE)
        self.has_view = True
        self.mem = self.view.buf
        self.total = <uint64_t>self.view.len
        if init:
            st = gq_init(self.mem, self.total, maxsize)
            if st == GQ_BAD_BLOCK:
                raise ValueError(f"a {self.total}-byte block is too small for a queue")
            if st != GQ_OK:
                raise OSError("pthread mutex initialisation failed for the shared queue")
        elif gq_validate(self.mem, self.total) != GQ_OK:
            raise ValueError("shared block is not a gristmill queue (or from another version)")
        self.dumps = dumps if dumps is not None else _default_dumps
        self.loads = loads if loads is not None else pickle.loads
        self._closed = False

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
            self.has_view = False
        self.mem = NULL

    def _mark_closed(self):
        # The mapping itself stays until this handle is garbage collected: a thread of this
        # process may still be inside a nogil wait on it.
        self._closed = True

    @property
    def closed(self):
        return self._closed

    cdef inline int _check(self) except -1:
        if self._closed:
            raise ValueError("operation on a closed queue")
        return 0

    # -- encoding -----------------------------------------------------------------------
    cdef object _encode(self, object obj, gq_msg *m):
        """Fill ``m`` for ``obj``; return what must stay alive while ``m`` is in use."""
        cdef object t = type(obj)
        cdef object hdr, data
        m.b = NULL
        m.blen = 0
        if t is bytes:
            m.a = PyBytes_AS_STRING(obj)
            m.alen = PyBytes_GET_SIZE(obj)
            m.meta = TAG_BYTES
            return obj
        if t is bytearray:
            m.a = PyByteArray_AS_STRING(obj)
            m.alen = len(obj)
            m.meta = TAG_BYTEARRAY
            return obj
        if t is _np_ndarray:
            hdr = _array_header(obj)
            if hdr is not None:
                data = obj
                if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>data):
                    data = (<cnp.ndarray>obj).copy(order="C")
                m.a = PyBytes_AS_STRING(hdr)
                m.alen = PyBytes_GET_SIZE(hdr)
                m.b = <const char *>cnp.PyArray_DATA(<cnp.ndarray>data)
                m.blen = <uint64_t>cnp.PyArray_NBYTES(<cnp.ndarray>data)
                m.meta = TAG_NDARRAY
                return (hdr, data)
        data = self.dumps(obj)
        if type(data) is not bytes:
            data = bytes(data)
        m.a = PyBytes_AS_STRING(data)
        m.alen = PyBytes_GET_SIZE(data)
        m.meta = TAG_PICKLE
        return data

    cdef object _decode(self, const char *rec):
        cdef uint32_t n = (<const uint32_t *>rec)[0]
        cdef uint32_t tag = (<const uint32_t *>rec)[1]
        cdef const char *p = rec + 8
        if tag == TAG_BYTES:
            return PyBytes_FromStringAndSize(p, n)
        if tag == TAG_NDARRAY:
            return _decode_array(p, n)
        if tag == TAG_BYTEARRAY:
            return PyByteArray_FromStringAndSize(p, n)
        if tag == TAG_PICKLE:
            return self.loads(PyBytes_FromStringAndSize(p, n))
        raise ValueError(f"corrupt message: unknown type tag {tag}")

    # -- core calls -----------------------------------------------------------------------
    cdef int _put(self, gq_msg *msgs, size_t n, uint64_t payload, bint block,
                  object timeout) except -1:
        cdef int st = GQ_BUSY
        cdef int64_t deadline = _deadline(block, timeout)
        if payload <= FAST_PATH_MAX_BYTES:
            st = gq_put_try(self.mem, msgs, n)
            if st == GQ_OK:
                return 0
        cdef int reg = GQ_NOT_REGISTERED
        if st == GQ_BUSY or (st == GQ_FULL and deadline != 0):
            try:
                while True:
                    with nogil:
                        st = gq_put_wait(self.mem, msgs, n, deadline, &reg)
                    if st != GQ_AGAIN:
                        break
                    PyErr_CheckSignals()
            finally:
                gq_settle_try(self.mem, GQ_PUTTERS, &reg)
        if st == GQ_OK:
            return 0
        if st == GQ_FULL:
            raise _stdqueue.Full
        if st == GQ_TOO_BIG:
            self._raise_too_big(msgs, n)
        raise OSError(f"shared queue failure (status {st})")

    cdef int _raise_too_big(self, gq_msg *msgs, size_t n) except -1:
        cdef gq_stats_t s
        cdef uint64_t need = 0
        cdef size_t i
        self._read_stats(&s)
        for i in range(n):
            need += 8 + ((msgs[i].alen + msgs[i].blen + 7) & ~(<uint64_t>7))
        if s.maxsize and n > s.maxsize:
            raise ValueError(
                f"put_many of {n} messages can never fit a queue with maxsize={s.maxsize}"
            )
        if n == 1:
            raise ValueError(
                f"message of {msgs[0].alen + msgs[0].blen} bytes ({need} with its record "
                f"header) can never fit this queue's {s.capacity}-byte buffer; "
                "create the queue with a larger max_size_bytes"
            )
        raise ValueError(
            f"put_many batch of {n} messages needs {need} bytes and can never fit this "
            f"queue's {s.capacity}-byte buffer; split it or raise max_size_bytes"
        )

    cdef int _get(self, uint64_t max_msgs, uint64_t max_bytes, bint block, object timeout,
                  char **out, uint64_t *out_bytes, uint64_t *out_n) except -1:
        cdef int64_t deadline = _deadline(block, timeout)
        cdef int st = gq_get_try(self.mem, max_msgs, max_bytes, FAST_PATH_MAX_BYTES, out,
                                 out_bytes, out_n)
        if st == GQ_OK:
            return 0
        cdef int reg = GQ_NOT_REGISTERED
        if st == GQ_BUSY or (st == GQ_EMPTY and deadline != 0):
            try:
                while True:
                    with nogil:
                        st = gq_get_wait(self.mem, max_msgs, max_bytes, deadline, out,
                                         out_bytes, out_n, &reg)
                    if st != GQ_AGAIN:
                        break
                    PyErr_CheckSignals()
            finally:
                gq_settle_try(self.mem, GQ_GETTERS, &reg)
        if st == GQ_OK:
            return 0
        if st == GQ_EMPTY:
            raise _stdqueue.Empty
        if st == GQ_NOMEM:
            raise MemoryError("shared queue: cannot grow the receive buffer")
        raise OSError(f"shared queue failure (status {st})")

    cdef object _materialize(self, uint64_t pos, uint32_t n, uint32_t tag):
        """The object for the record at ``pos``, copied once from the ring (lock held).

        Only allocates objects the garbage collector does not track (bytes, bytearray,
        ndarray; a new dtype is parsed with the collector off), so no finalizer can run and
        re-enter the queue while the lock is held. Returns None for a record this path
        does not handle (the general path then takes it). Pickles come back as bytes.
        """
        cdef object obj
        cdef char hdr[2 + 255 + 8 + 8 * 32]
        cdef int ndim, dtlen, off, i
        cdef cnp.npy_intp dims[32]
        cdef int64_t dim
        cdef uint64_t hsize
        if tag == TAG_BYTES or tag == TAG_PICKLE:
            obj = PyBytes_FromStringAndSize(NULL, n)
            if n:
                gq_read_at(self.mem, pos, 0, PyBytes_AS_STRING(obj), n)
            return obj
        if tag == TAG_BYTEARRAY:
            obj = PyByteArray_FromStringAndSize(NULL, n)
            if n:
                gq_read_at(self.mem, pos, 0, PyByteArray_AS_STRING(obj), n)
            return obj
        if tag != TAG_NDARRAY or n < 2:
            return None
        gq_read_at(self.mem, pos, 0, hdr, 2)
        ndim = <uint8_t>hdr[0]
        dtlen = <uint8_t>hdr[1]
        off = (2 + dtlen + 7) & ~7
        hsize = off + 8 * ndim
        if ndim > MAX_NDIM or hsize > n:
            return None
        gq_read_at(self.mem, pos, 0, hdr, hsize)
        key = PyBytes_FromStringAndSize(hdr + 2, dtlen)
        dt = _DTYPE_CACHE.get(key)
        if dt is None:  # first array of this dtype here: parse it with the collector off,
            gc_was_on = PyGC_Disable()  # so that no finalizer can run under the lock
            try:
                dt = np.dtype(key.decode("ascii"))
            finally:
                if gc_was_on:
                    PyGC_Enable()
            _DTYPE_CACHE[key] = dt
        for i in range(ndim):
            memcpy(&dim, hdr + off + 8 * i, 8)
            dims[i] = <cnp.npy_intp>dim
        Py_INCREF(dt)  # PyArray_Empty steals a reference to the descriptor
        obj = PyArray_Empty(ndim, dims, <cnp.dtype>dt, 0)
        if <uint64_t>cnp.PyArray_NBYTES(<cnp.ndarray>obj) != n - hsize:
            return None
        if n > hsize:
            gq_read_at(self.mem, pos, hsize, <char *>cnp.PyArray_DATA(<cnp.ndarray>obj),
                       n - hsize)
        return obj

    cdef int _take_fast(self, uint64_t max_msgs, uint64_t max_bytes, list out) except -2:
        """Take up to ``max_msgs`` messages into ``out`` without waiting, copying each once.

        GIL held. Returns how many were taken, 0 if the queue is empty, -1 if the caller
        must take the general path (lock busy, first message large or of a new dtype).
        """
        cdef uint64_t head, tail, pos, rb, n = 0
        cdef uint32_t ln, tag
        cdef Py_ssize_t pickled[64]  # indices into out; a C array: no GC-tracked allocation
        cdef int n_pickled = 0, i
        cdef int st
        if max_bytes == 0 or max_bytes > FAST_PATH_MAX_BYTES:
            max_bytes = FAST_PATH_MAX_BYTES  # keeps the GIL/lock hold short and allocations warm
        st = gq_hold_try(self.mem, &head, &tail)
        if st == GQ_EMPTY:
            return 0
        if st != GQ_OK:
            return -1
        pos = head
        try:
            while n < max_msgs and pos < tail:
                gq_record_at(self.mem, pos, &ln, &tag)
                rb = 8 + ((<uint64_t>ln + 7) & ~(<uint64_t>7))
                if ln > FAST_PATH_MAX_BYTES:
                    break
                if n > 0 and max_bytes and pos - head + rb > max_bytes:
                    break
                obj = self._materialize(pos, ln, tag)
                if obj is None:
                    break
                if tag == TAG_PICKLE:
                    if n_pickled == 64:
                        break
                    pickled[n_pickled] = len(out)
                    n_pickled += 1
                out.append(obj)
                pos += rb
                n += 1
        except BaseException:
            gq_release(self.mem)  # nothing taken: the messages stay queued
            del out[len(out) - n:]
            raise
        if n == 0:
            gq_release(self.mem)
            return -1
        gq_release_commit(self.mem, pos, n)
        for i in range(n_pickled):  # unpickle after unlocking: loads runs arbitrary code
            out[pickled[i]] = self.loads(out[pickled[i]])
        return <int>n

    # -- public API -----------------------------------------------------------------------
    def put(self, obj, bint block=True, timeout=None):
        """Put ``obj``; block (up to ``timeout`` s; None = forever) while the queue is full.

        Raises ``queue.Full`` when it stays full (or its lock stays held by a stopped
        process: non-blocking calls wait one 0.1 s slice for a busy lock), ``ValueError`` at
        once if the message can never fit.
        """
        cdef gq_msg m
        self._check()
        keep = self._encode(obj, &m)
        self._put(&m, 1, m.alen + m.blen, block, timeout)

    def put_nowait(self, obj):
        """``put(obj, block=False)``."""
        self.put(obj, False)

    def put_many(self, msgs, bint block=True, timeout=None):
        """Put every message of ``msgs`` atomically (all or none, in order)."""
        cdef list items = list(msgs)
        cdef size_t n = len(items), i
        cdef uint64_t payload = 0
        cdef gq_msg *arr
        self._check()
        if n == 0:
            return
        arr = <gq_msg *>malloc(n * sizeof(gq_msg))
        if arr == NULL:
            raise MemoryError()
        try:
            keep = [self._encode(items[i], &arr[i]) for i in range(n)]
            for i in range(n):
                payload += arr[i].alen + arr[i].blen
            self._put(arr, n, payload, block, timeout)
        finally:
            free(arr)

    def put_many_nowait(self, msgs):
        self.put_many(msgs, False)

    def get(self, bint block=True, timeout=None):
        """Remove and return the oldest message; block (up to ``timeout`` s) while empty.

        Raises ``queue.Empty`` when it stays empty.
        """
        cdef char *buf
        cdef uint64_t nbytes, n
        cdef list out = []
        cdef int took
        self._check()
        took = self._take_fast(1, 0, out)
        if took > 0:
            return out[0]
        if took == 0 and not block:
            raise _stdqueue.Empty
        self._get(1, 0, block, timeout, &buf, &nbytes, &n)
        return self._decode(buf)

    def get_nowait(self):
        """``get(block=False)``."""
        return self.get(False)

    def get_many(self, bint block=True, timeout=None, max_messages=1_000_000_000,
                 max_messages_to_get=None, max_bytes=DEFAULT_GET_MANY_BYTES):
        """Remove and return up to ``max_messages`` messages (at least one) as a list.

        Blocks (up to ``timeout`` s) only while the queue is empty; takes whatever is there
        under one lock, up to ``max_messages`` and ``max_bytes`` of records (the first
        message is always taken, whatever its size; 0 = only the internal 256 KiB limit of
        the GIL-held path). The byte cap keeps a batch cache-resident: draining megabytes at
        once is slower per message (cold memory, freed results page-faulted back in).
        ``max_messages_to_get`` is faster-fifo's spelling of the cap.
        """
        cdef char *buf
        cdef uint64_t nbytes, n, i, off = 0, cap
        cdef uint32_t ln
        cdef list out
        cdef int took
        self._check()
        if max_messages_to_get is not None:
            max_messages = max_messages_to_get
        cap = _count("max_messages", max_messages, 1)
        max_bytes = _count("max_bytes", max_bytes, 0)
        out = []
        took = self._take_fast(cap, max_bytes, out)
        if took > 0:
            return out
        if took == 0 and not block:
            raise _stdqueue.Empty
        self._get(cap, max_bytes, block, timeout, &buf, &nbytes, &n)
        for i in range(n):
            out.append(self._decode(buf + off))
            ln = (<const uint32_t *>(buf + off))[0]
            off += 8 + ((ln + 7) & ~(<uint64_t>7))
        return out

    def get_many_nowait(self, max_messages=1_000_000_000, max_bytes=DEFAULT_GET_MANY_BYTES):
        return self.get_many(False, None, max_messages, None, max_bytes)

    # -- inspection -----------------------------------------------------------------------
    cdef int _read_stats(self, gq_stats_t *s) except -1:
        """Fill ``s`` under the lock, waiting in slices (signals checked between them) while
        another process holds it."""
        cdef int st
        while True:
            with nogil:
                st = gq_stats(self.mem, s)
            if st == GQ_OK:
                return 0
            if st != GQ_AGAIN:
                raise OSError(f"shared queue: lock failure (status {st})")
            PyErr_CheckSignals()

    def _stats(self):
        cdef gq_stats_t s
        if self.mem == NULL:
            raise ValueError("queue handle is not bound")
        self._read_stats(&s)
        return {
            "count": s.count, "used_bytes": s.used_bytes, "capacity": s.capacity,
            "maxsize": s.maxsize, "recoveries": s.recoveries, "total_put": s.total_put,
            "total_got": s.total_got, "waiting_getters": s.waiting_getters,
            "waiting_putters": s.waiting_putters, "putter_wakeups": s.putter_wakeups,
        }

    def qsize(self):
        """Number of messages in the queue (approximate, as in the stdlib)."""
        cdef gq_stats_t s
        self._check()
        self._read_stats(&s)
        return s.count

    def data_size(self):
        """Bytes of the ring in use (records incl. their 8-byte headers and padding)."""
        cdef gq_stats_t s
        self._check()
        self._read_stats(&s)
        return s.used_bytes

    def empty(self):
        return self.qsize() == 0

    def full(self):
        """True if not even an empty message would fit right now."""
        cdef gq_stats_t s
        self._check()
        self._read_stats(&s)
        if s.maxsize and s.count >= s.maxsize:
            return True
        return s.capacity - s.used_bytes < 8

    @property
    def capacity(self):
        """Ring size in bytes; a message of n bytes takes 8 + n rounded up to 8."""
        self._check()
        return gq_capacity_of(self.mem)

    @property
    def maxsize(self):
        self._check()
        return gq_maxsize_of(self.mem)

    def _debug_holder(self):
        """Test hook: pid paused inside put's critical section, or 0."""
        return gq_debug_holder(self.mem)


def _default_dumps(obj):
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
