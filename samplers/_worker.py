"""The env pool's worker process: step its envs, write results straight into shared memory.

Protocol (all in one :class:`~gristmill.kernels.shm.SharedArrays` segment, laid out by
``pool.EnvPool``): the main process appends ``(env_id, cmd, base, pos)`` items to this
worker's ring, bumps ``head[w]`` and posts semaphore ``w``. The worker takes items in order
(FIFO), runs the env, writes obs/reward/flags/info into an output slot, publishes it in the
slot book (:class:`~gristmill.samplers._slots.Slots`: one atomic bit per slot), and only then
advances ``progress[w, P_TAIL]`` past the item. Whoever completes a block posts the block's
semaphore, on which ``recv`` sleeps.

Sync mode names the slot in the item (sequence number ``base + pos``: results in request
order). Async mode sends ``base = -1``: the worker steps the env into a staging row, then
claims the next free slot and copies the observation there, so blocks fill in the order
steps finish, whichever worker runs them -- EnvPool's "first ``batch_size`` envs to finish". A
worker slowed down (by slower envs, or by a core it shares) then holds back nothing but its
own envs, instead of stalling every batch that includes them while the other workers idle.

After a restart the new worker starts at ``P_TAIL`` of the ring, which the main process has
rewritten: the dead worker's unfinished items as ``CMD_RESET_TRUNC`` (into the slot it had
claimed, if any), its published ones dropped. Every env's first result from a new worker
is a reset reporting ``truncated`` (its episode was lost).

No pickling, no pipes on the hot path: the pipe only carries "ready" and crash reports
(:func:`~gristmill.samplers.supervision.crash_report`, as the rollout workers send them).

The loop itself is compiled (:class:`~gristmill.samplers._worker_loop.StepLoop`): a step of
an env with a native step (``env.native_step()``, e.g. the MuJoCo tasks) runs in C without
the GIL, from the ring item to the publish; resets and Python envs come back to
``run_item`` below, item by item.
"""

from __future__ import annotations

import os

import numpy as np
from gristmill.kernels.shmsignal import SignalSet

from ._slots import Slots
from ._worker_loop import StepLoop
from .supervision import become_worker, crash_report

__all__ = ["CMD_CLOSE", "CMD_RESET", "CMD_RESET_TRUNC", "CMD_STEP", "worker_main"]

CMD_STEP, CMD_RESET, CMD_CLOSE, CMD_RESET_TRUNC = 0, 1, 2, 3
# progress[w] fields
P_TAIL = 0


def worker_main(w, env_ids, factory, arrays, layout, base_seed, conn, parent_pid,
                restarted=False):
    """Entry point of worker ``w`` (fork or spawn). ``restarted``: it replaces a dead worker,
    so each env's first result reports ``truncated`` (its episode was lost)."""
    become_worker()
    try:
        _run(w, env_ids, factory, arrays, layout, base_seed, conn, parent_pid, restarted)
    except BaseException as exc:  # noqa: BLE001 - report everything, then die
        try:
            conn.send({"kind": "worker_error", "worker": w, "env_ids": list(env_ids),
                       **crash_report(exc)})
        except (OSError, ValueError):
            pass
        os._exit(1)
    os._exit(0)


def _run(w, env_ids, factory, arrays, layout, base_seed, conn, parent_pid, restarted):
    n_workers, n_blocks, batch = layout[:3]
    sig = SignalSet(arrays["signals"], n_workers + n_blocks, 0)
    book = Slots(arrays["tags"], arrays["cursor"], arrays["masks"], batch)
    progress = arrays["progress"][w]
    expected = arrays["expected"]
    act = arrays["act"]
    seeds = arrays["seeds"]
    local = {int(e): k for k, e in enumerate(env_ids)}
    current = [env_ids[0]]  # env being stepped, for error reports

    envs = []
    for i in env_ids:
        current[0] = i
        if factory.kind == "provider" and base_seed is not None:
            # gristmill's own envs take their seed at construction (ALE: one ROM load)
            envs.append(factory(seed=base_seed + int(i)))
        else:
            envs.append(factory())
    fast = [hasattr(e, "step_into") and hasattr(e, "reset_into") for e in envs]
    info_keys = list(getattr(envs[0], "info_spec", {}) or {})
    info_keys = [k for k in info_keys if ("info_" + k) in arrays]
    needs_reset = np.ones(len(envs), np.uint8)  # shared with the compiled loop
    elapsed = np.zeros(len(envs), np.int32)  # steps since reset, shared with it too
    report_trunc = [bool(restarted)] * len(envs)
    first_reset = [True] * len(envs)
    sem_w = w
    blk0 = n_workers
    conn.send({"kind": "ready", "worker": w})

    # Per-slot obs views and per-block info rows, built once: the hot path indexes lists.
    obs_v = [[arrays["obs"][b, p, ...] for p in range(batch)] for b in range(n_blocks)]
    stage = np.empty_like(obs_v[0][0])  # async: the step's obs, until its slot is claimed
    book.attach_outputs(arrays["rew"], arrays["term"], arrays["trunc"], arrays["env_id"],
                        arrays["elapsed_step"], expected, arrays["obs"], stage)
    info_b = [list(arrays["info_" + k]) for k in info_keys]
    # native steps fill no info but elapsed_step (int32)
    info_elapsed = arrays["info_elapsed_step"] if info_keys == ["elapsed_step"] else None
    native_ok = not info_keys or (info_elapsed is not None and info_elapsed.dtype == np.int32)
    natives = [e.native_step() if native_ok and f and hasattr(e, "native_step") else None
               for e, f in zip(envs, fast, strict=True)]

    def run_item(env_id, cmd, base, pos):
        k = local[env_id]
        e = envs[k]
        current[0] = env_id
        dynamic = base < 0
        if dynamic:
            obs_row = stage
        else:
            s = base + pos
            block, pos = (s // batch) % n_blocks, s % batch
            obs_row = obs_v[block][pos]
        if cmd != CMD_STEP or needs_reset[k]:
            s = int(seeds[env_id])
            if s < 0:
                seed = base_seed + env_id if first_reset[k] and base_seed is not None else None
            else:
                seed = s
                seeds[env_id] = -1
            first_reset[k] = False
            if fast[k]:
                e.reset_into(obs_row, seed=seed)
            else:
                o, info = e.reset(seed=seed)
                obs_row[...] = o
            needs_reset[k] = 0
            elapsed[k] = 0
            rew, term = 0.0, False
            trunc = cmd == CMD_RESET_TRUNC or report_trunc[k]
            report_trunc[k] = False
        else:
            if fast[k]:
                rew, term, trunc = e.step_into(act[env_id], obs_row)
            else:
                o, rew, term, trunc, info = e.step(act[env_id].copy())
                obs_row[...] = o
            elapsed[k] += 1
            if term or trunc:
                needs_reset[k] = 1
        if dynamic:
            # async: the next free output slot, claimed once the step is done (results come
            # in the order envs finish); the claim records us as its owner, so a restart
            # fills it if we die before publishing
            s = book.claim(w)
            block, pos = (s // batch) % n_blocks, s % batch
        if info_keys:
            if fast[k]:
                for rows, v in zip(info_b, e.info_values(), strict=False):
                    rows[block][pos] = v
            else:
                for rows, key in zip(info_b, info_keys, strict=True):
                    if key in info:
                        rows[block][pos] = info[key]
        # the observation (async: from the staging row), reward, flags, ids, then publish
        if book.put(block, pos, rew, term, trunc, env_id, elapsed[k], dynamic):
            sig.post(blk0 + block)

    # the item is done once published (progress[P_TAIL] passes it); a restart reads that
    # from the slot book, so a kill between publish and P_TAIL redoes nothing
    loop = StepLoop(w, arrays, layout, env_ids, natives, needs_reset, elapsed, stage,
                    info_elapsed, run_item, sig.post, int(progress[P_TAIL]))
    while loop.run():
        if not sig.wait(sem_w, timeout=1.0) and os.getppid() != parent_pid:
            return  # orphaned


def split_envs(num_envs: int, num_workers: int) -> list[np.ndarray]:
    """Env ids dealt round-robin to workers: worker ``w`` owns ``w, w + W, w + 2W, ...``, so a
    batch of consecutive ids loads every worker equally."""
    return [np.arange(w, num_envs, num_workers) for w in range(num_workers)]
