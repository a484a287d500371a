# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One MuJoCo task step in C: ``ctrl = action``, ``mj_step`` x frame_skip (and
``mj_rnePostConstraint`` where the task reads ``cfrc_ext``), then observation, reward and
termination computed on ``MjData``'s arrays, with no Python and no GIL.

The results are bit-identical to gymnasium's v5 envs (``tests/envs/test_mujoco.py``): sums of
squares follow numpy's pairwise summation (``pairwise_sum`` in numpy's ``loops_utils.h``: 8
accumulators over blocks of <= 128, halves rounded to multiples of 8 above), float32 control
costs stay float32 where numpy 2 (NEP 50) keeps them float32, and every other expression keeps
gymnasium's order of operations (the module is compiled without FMA contraction).

MuJoCo's C functions are called through the addresses of the library the ``mujoco`` bindings
loaded (see :func:`gristmill.envs.mujoco._mujoco_functions`); ``mjModel``/``mjData`` are the
bindings' own structs (``MjModel._address``), and the arrays are the bindings' views of them,
which never move for the ``MjData``'s life.

**Native step ABI** (what :func:`gristmill.samplers` worker loops call without the GIL):
``int step(void *state, const void *action, void *obs)`` where ``state`` is
:attr:`MjStepper.state_address`, ``action`` one action in the env's ``action_space`` dtype
and ``obs`` one observation row in its ``observation_space`` dtype; it returns the flags
``1`` (terminated) | ``2`` (truncated) and stores the reward at ``state`` (a ``double``, the
struct's first field). :meth:`MjStepper.native_step` gives ``(function address, state
address)``.
"""

from libc.math cimport isfinite
from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport free, malloc

import numpy as np

ctypedef void (*mj_fn)(const void *m, void *d) noexcept nogil

cdef enum Task:
    ANT = 0
    FORWARD = 1
    HOPPER = 2
    HUMANOID = 3

TASK_KINDS = {"ant": ANT, "forward": FORWARD, "hopper": HOPPER, "humanoid": HUMANOID}

cdef struct State:
    double reward  # first: the ABI's reward slot
    int64_t elapsed
    int64_t max_steps
    int task
    int action_f64  # this step's action is float64 (else float32)
    const void *m
    void *d
    mj_fn step
    mj_fn rne  # NULL: skipped
    int nstep
    double dt
    double *qpos
    double *qvel
    double *ctrl
    int nq, nv, nu
    Py_ssize_t obs_size
    # task parameters (see MjStepper.__cinit__)
    double fw, cw, ccw, hr, zlo, zhi, lo, hi, slo, shi, alo, ahi
    int obs_skip, check_state, terminate
    # Ant
    double *cfrc
    double *cf  # scratch: clipped contact forces
    int ncfrc
    double *xpos_x  # xpos[main_body, 0]
    # Humanoid
    double *cinert
    double *cvel
    double *qfrc
    double *xipos
    double *mass
    double total
    int nbody


# ---- numpy's pairwise summation of squares ------------------------------------------------
ctypedef fused real:
    float
    double


cdef real _block_sq(const real *a, Py_ssize_t n) noexcept nogil:
    """numpy's pairwise_sum base case (n <= 128) over squared values."""
    cdef real res, r0, r1, r2, r3, r4, r5, r6, r7
    cdef Py_ssize_t i, m
    if n < 8:
        res = a[0] * <real> 0
        for i in range(n):
            res = res + a[i] * a[i]
        return res
    r0 = a[0] * a[0]
    r1 = a[1] * a[1]
    r2 = a[2] * a[2]
    r3 = a[3] * a[3]
    r4 = a[4] * a[4]
    r5 = a[5] * a[5]
    r6 = a[6] * a[6]
    r7 = a[7] * a[7]
    m = n - n % 8
    i = 8
    while i < m:
        r0 = r0 + a[i] * a[i]
        r1 = r1 + a[i + 1] * a[i + 1]
        r2 = r2 + a[i + 2] * a[i + 2]
        r3 = r3 + a[i + 3] * a[i + 3]
        r4 = r4 + a[i + 4] * a[i + 4]
        r5 = r5 + a[i + 5] * a[i + 5]
        r6 = r6 + a[i + 6] * a[i + 6]
        r7 = r7 + a[i + 7] * a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(m, n):
        res = res + a[i] * a[i]
    return res


cdef real _sumsq(const real *a, Py_ssize_t n) noexcept nogil:
    """``np.sum(np.square(a))``, bit-identical to numpy (n >= 1)."""
    cdef Py_ssize_t n2
    if n <= 128:
        return _block_sq(a, n)
    n2 = n // 2
    n2 -= n2 % 8
    return _sumsq(a, n2) + _sumsq(a + n2, n - n2)


def sumsq(a):
    """``np.sum(np.square(a))`` (same value and dtype) for a non-empty 1-D contiguous float32
    or float64 array, in one compiled call."""
    cdef const float[::1] f
    cdef const double[::1] d
    if a.dtype == np.float32:
        f = a
        return np.float32(_sumsq(&f[0], f.shape[0]))
    d = a
    return np.float64(_sumsq(&d[0], d.shape[0]))


# ---- the step -----------------------------------------------------------------------------
cdef inline double _mass_center_x(State *s) noexcept nogil:
    """``(np.sum(mass[:, None] * xipos, axis=0) / total)[0]``: numpy sums over bodies in
    order (the reduced axis is not the contiguous one), so does this."""
    cdef double acc = 0.0
    cdef int b
    for b in range(s.nbody):
        acc = acc + s.mass[b] * s.xipos[3 * b]
    return acc / s.total


cdef inline int _put(double *obs, int k, const double *src, int lo, int n) noexcept nogil:
    cdef int i
    for i in range(lo, n):
        obs[k] = src[i]
        k += 1
    return k


cdef inline double _ctrl_cost(State *s, const void *action, double cw) noexcept nogil:
    """``cw * sum(action ** 2)`` in the action's dtype (float32 for a float32 action, as
    numpy 2 computes it), returned as a double."""
    if s.action_f64:
        return cw * _sumsq(<const double *> action, s.nu)
    return <float> cw * _sumsq(<const float *> action, s.nu)


cdef int native_step(void *state, const void *action, void *obs_out) noexcept nogil:
    """The native step ABI (see the module docstring): a float32 action."""
    (<State *> state).action_f64 = 0
    return step(<State *> state, action, <double *> obs_out)


cdef int step(State *s, const void *action, double *obs) noexcept nogil:
    """One step (``s.action_f64``: the action is float64, else float32); stores the reward
    in ``s.reward``, returns 1 terminated | 2 truncated."""
    cdef double before, x_vel, v, contact, ctrl, reward
    cdef int i, k, n
    cdef bint healthy = True
    if s.task == HUMANOID:
        before = _mass_center_x(s)
    elif s.task == ANT:
        before = s.xpos_x[0]
    else:
        before = s.qpos[0]
    if s.action_f64:
        for i in range(s.nu):
            s.ctrl[i] = (<const double *> action)[i]
    else:
        for i in range(s.nu):
            s.ctrl[i] = (<const float *> action)[i]
    for i in range(s.nstep):
        s.step(s.m, s.d)
    if s.rne != NULL:
        s.rne(s.m, s.d)

    if s.task == FORWARD:  # HalfCheetah, Swimmer
        k = _put(obs, 0, s.qpos, s.obs_skip, s.nq)
        _put(obs, k, s.qvel, 0, s.nv)
        x_vel = (s.qpos[0] - before) / s.dt
        reward = s.fw * x_vel - _ctrl_cost(s, action, s.cw)
    elif s.task == ANT:
        k = _put(obs, 0, s.qpos, 2, s.nq)
        k = _put(obs, k, s.qvel, 0, s.nv)
        for i in range(s.ncfrc):
            v = s.cfrc[i]
            if v < s.lo:
                v = s.lo
            if v > s.hi:
                v = s.hi
            s.cf[i] = v
            if i >= 6:
                obs[k] = v
                k += 1
        for i in range(s.nq):
            if not isfinite(s.qpos[i]):
                healthy = False
        for i in range(s.nv):
            if not isfinite(s.qvel[i]):
                healthy = False
        healthy = healthy and s.zlo <= s.qpos[2] and s.qpos[2] <= s.zhi
        x_vel = (s.xpos_x[0] - before) / s.dt
        contact = s.ccw * _sumsq(<const double *> s.cf, s.ncfrc)
        ctrl = _ctrl_cost(s, action, s.cw)
        reward = (x_vel * s.fw + (s.hr if healthy else 0.0)) - (ctrl + contact)
    elif s.task == HOPPER:  # Hopper, Walker2d
        k = _put(obs, 0, s.qpos, 1, s.nq)
        for i in range(s.nv):
            v = s.qvel[i]
            if v < -10.0:
                v = -10.0
            if v > 10.0:
                v = 10.0
            obs[k] = v
            k += 1
        healthy = (s.zlo < s.qpos[1] and s.qpos[1] < s.zhi and s.alo < s.qpos[2]
                   and s.qpos[2] < s.ahi)
        if s.check_state:  # state_vector()[2:]: qpos[2:] and qvel
            for i in range(2, s.nq):
                if not (s.slo < s.qpos[i] and s.qpos[i] < s.shi):
                    healthy = False
            for i in range(s.nv):
                if not (s.slo < s.qvel[i] and s.qvel[i] < s.shi):
                    healthy = False
        x_vel = (s.qpos[0] - before) / s.dt
        reward = (s.fw * x_vel + (s.hr if healthy else 0.0)) - _ctrl_cost(s, action, s.cw)
    else:  # HUMANOID
        n = s.nbody
        k = _put(obs, 0, s.qpos, 2, s.nq)
        k = _put(obs, k, s.qvel, 0, s.nv)
        k = _put(obs, k, s.cinert, 10, 10 * n)
        k = _put(obs, k, s.cvel, 6, 6 * n)
        k = _put(obs, k, s.qfrc, 6, s.nv)
        _put(obs, k, s.cfrc, 6, 6 * n)
        x_vel = (_mass_center_x(s) - before) / s.dt
        healthy = s.zlo < s.qpos[2] and s.qpos[2] < s.zhi
        ctrl = s.cw * _sumsq(<const double *> s.ctrl, s.nu)
        contact = s.ccw * _sumsq(<const double *> s.cfrc, 6 * n)
        # Python's min(max(contact, lo), hi)
        if s.lo > contact:
            contact = s.lo
        if s.hi < contact:
            contact = s.hi
        reward = (s.fw * x_vel + (s.hr if healthy else 0.0)) - (ctrl + contact)
    s.reward = reward
    s.elapsed += 1
    return (1 if (s.terminate and not healthy) else 0) | (2 if s.elapsed >= s.max_steps else 0)


cdef uintptr_t _addr(a, dtype) except 0:
    """Address of a C-contiguous array's first element (checked against ``dtype``)."""
    if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous
            and a.size > 0):
        raise ValueError(f"expected a non-empty C-contiguous {np.dtype(dtype)} array")
    return <uintptr_t> a.ctypes.data


cdef class MjStepper:
    """The compiled step of one MuJoCo task env (see the module docstring).

    ``env``: a :class:`gristmill.envs.mujoco.MujocoEnv` whose class names ``native_kind``
    (``"ant"``, ``"forward"``, ``"hopper"`` or ``"humanoid"``); ``functions``: the addresses
    of ``mj_step`` and ``mj_rnePostConstraint``.
    The stepper keeps the env's arrays alive and counts its steps (:attr:`elapsed`).
    """

    cdef State s
    cdef object _keep

    def __cinit__(self, env, functions):
        cdef State *s = &self.s
        m, d = env.model, env.data
        kind = TASK_KINDS[env.native_kind]
        step_addr, rne_addr = functions
        s.task = kind
        if m.nu > 64:
            raise ValueError(f"at most 64 actuators, got {m.nu}")
        s.m = <const void *> <uintptr_t> m._address
        s.d = <void *> <uintptr_t> d._address
        s.step = <mj_fn> <uintptr_t> step_addr
        s.rne = NULL
        if env.uses_cfrc_ext:
            s.rne = <mj_fn> <uintptr_t> rne_addr
        s.nstep = env.frame_skip
        s.dt = env.dt
        s.max_steps = env.max_episode_steps
        s.elapsed = 0
        qpos, qvel, ctrl = d.qpos, d.qvel, d.ctrl
        s.qpos = <double *> _addr(qpos, np.float64)
        s.qvel = <double *> _addr(qvel, np.float64)
        s.ctrl = <double *> _addr(ctrl, np.float64)
        s.nq, s.nv, s.nu = m.nq, m.nv, m.nu
        s.obs_size = env.observation_space.shape[0]
        s.fw = env.forward_reward_weight
        s.cw = env.ctrl_cost_weight
        s.terminate = bool(getattr(env, "terminate_when_unhealthy", False))
        s.hr = getattr(env, "healthy_reward", 0.0)
        cfrc = d.cfrc_ext.reshape(-1)
        s.cf = NULL
        keep = [m, d, qpos, qvel, ctrl, cfrc]
        if kind == ANT:
            s.ccw = env.contact_cost_weight
            s.zlo, s.zhi = env.healthy_z_range
            s.lo, s.hi = env.contact_force_range
            s.cfrc = <double *> _addr(cfrc, np.float64)
            s.ncfrc = cfrc.size
            s.cf = <double *> malloc(s.ncfrc * sizeof(double))
            if s.cf == NULL:
                raise MemoryError()
            xpos = d.xpos
            keep.append(xpos)
            body = env.main_body
            if not 0 <= body < m.nbody:
                raise ValueError(f"main_body {body} out of range [0, {m.nbody})")
            s.xpos_x = (<double *> _addr(xpos, np.float64)) + 3 * <int> body
        elif kind == FORWARD:
            s.obs_skip = env.obs_skip
        elif kind == HOPPER:
            s.slo, s.shi = env.healthy_state_range
            s.zlo, s.zhi = env.healthy_z_range
            s.alo, s.ahi = env.healthy_angle_range
            s.check_state = env._checks_state
        else:  # HUMANOID
            s.ccw = env.contact_cost_weight
            s.lo, s.hi = env.contact_cost_range
            s.zlo, s.zhi = env.healthy_z_range
            cinert, cvel = d.cinert.reshape(-1), d.cvel.reshape(-1)
            qfrc, xipos, mass = d.qfrc_actuator, d.xipos, m.body_mass
            keep += [cinert, cvel, qfrc, xipos, mass]
            s.cinert = <double *> _addr(cinert, np.float64)
            s.cvel = <double *> _addr(cvel, np.float64)
            s.qfrc = <double *> _addr(qfrc, np.float64)
            s.xipos = <double *> _addr(xipos, np.float64)
            s.mass = <double *> _addr(mass, np.float64)
            s.total = mass.sum()
            s.nbody = m.nbody
            s.cfrc = <double *> _addr(cfrc, np.float64)
        self._keep = keep

    def __dealloc__(self):
        free(self.s.cf)

    @property
    def elapsed(self):
        """Steps since the last reset (the env's ``elapsed_step``)."""
        return self.s.elapsed

    @elapsed.setter
    def elapsed(self, int64_t value):
        self.s.elapsed = value

    def native_step(self):
        """``(function address, state address)`` of the native step ABI."""
        return <uintptr_t> &native_step, <uintptr_t> &self.s

    def step_into(self, action, double[::1] obs not None):
        """One step from Python: writes ``obs``, returns ``(reward, terminated, truncated)``.
        ``action``: a 1-D C-contiguous float32 or float64 array of ``nu`` values."""
        cdef const float[::1] af
        cdef const double[::1] ad
        cdef const void *p
        cdef int flags
        self.s.action_f64 = action.dtype == np.float64
        if self.s.action_f64:
            ad = action
            n = ad.shape[0]
            p = &ad[0]
        else:
            af = action
            n = af.shape[0]
            p = &af[0]
        if n != self.s.nu:
            raise ValueError(f"action has {n} values, expected {self.s.nu}")
        if obs.shape[0] < self.s.obs_size:
            raise ValueError(f"obs row has {obs.shape[0]} values, expected {self.s.obs_size}")
        with nogil:
            flags = step(&self.s, p, &obs[0])
        return self.s.reward, bool(flags & 1), bool(flags & 2)
