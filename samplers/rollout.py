"""Trajectory buffers and the protocol between rollout workers and an inference/learner side.

This is Sample Factory's sampling design (Petrenko et al. 2020, arXiv:2006.11751, §3) without
torch: rollout workers step environments and write observations straight into
shared-memory *trajectory slots*; whoever runs the policy (inference) reads them by index,
writes actions, log-probs, logits, values, recurrent states and the policy version back into
the same slot, and the learner takes completed slots as training data and returns them to the
free list. Only small index messages cross :class:`gristmill.kernels.shmqueue.Queue` s.

Slot layout (``S`` slots, rollout ``T``; ``[S, T + 1]`` entries hold the bootstrap step):

==================  ====================  =================================================
array               shape, dtype          written by
==================  ====================  =================================================
obs_<key>           [S, T+1, *shape]      worker (step t's observation)
rnn_states          [S, T+1, state]       inference (state after step t, before any reset
                                          at an episode end: whoever reads it for step
                                          t+1 zeroes it where dones[t]); the worker
                                          writes [S, 0] when it opens a slot
actions             [S, T, A] float32     inference
log_prob_actions    [S, T] float32        inference
action_logits       [S, T, L] float32     inference
values              [S, T+1] float32      inference (the last one by the learner)
policy_version      [S, T] int64          inference
policy_id           [S, T] int16          inference (the policy that acted)
rewards             [S, T] float32        worker (scaled and clipped)
dones, time_outs    [S, T] uint8          worker (episode ended / was truncated after t)
valids              [S, T] uint8          worker (0 for a step lost to an env crash)
policy_params       [P, K] float64        the policies' owner (optional: K > 0); read by
                                          the workers at each agent's episode start
==================  ====================  =================================================

Per-policy env parameters (optional, ``param_rows`` P x ``param_width`` K): row ``k`` holds
what the env should use for an agent that policy ``k`` drives, e.g. the reward-shaping
coefficients that Sample Factory's PBT mutates per policy. Whenever an agent's policy takes
effect (its env made, an episode ended) the worker calls ``env.set_agent_params(agent, row)``
with a copy of its policy's row; an env must then have that method. Policy ids without a row
(past ``P``, e.g. frozen opponents that never train) leave the env's parameters as they were.

Messages: a worker asks for actions with ``(worker, generation, split, t, slots)`` on the
request queue and waits for ``split`` on its own action queue; a finished slot goes on the
trajectory queue; free slots circulate on the free queue (a worker that finds none waits:
back-pressure when the learner falls behind). Episode statistics and env errors travel on
the report queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from gristmill.kernels.shm import SharedArrays
from gristmill.kernels.shmqueue import Queue

__all__ = ["RolloutLayout", "RolloutChannels"]


@dataclass(frozen=True)
class RolloutLayout:
    """Sizes of the sampling system.

    Args:
      num_workers, envs_per_worker, num_splits: ``envs_per_worker`` envs per worker process,
        stepped in ``num_splits`` groups so stepping one overlaps inference for another
        (Sample Factory's double buffering, ``worker_num_splits=2``).
      rollout: steps per trajectory slot (``T``).
      num_slots: trajectory slots; at least every env's slot plus room for the batches.
      obs: per-key ``(shape, dtype)``.
      action_dim, num_logits, state_size: widths of the policy outputs (see
        :mod:`gristmill.samplers.spaces` for the codecs of the env spaces).
      agents_per_env: policy-driven agents in each env (multi-agent envs such as a Doom duel
        return per-agent lists); every agent has its own trajectory slot.
      param_rows, param_width: the per-policy env parameter table (see the module docstring);
        ``param_width`` 0: none.
    """

    num_workers: int
    envs_per_worker: int
    rollout: int
    num_slots: int
    obs: dict = field(default_factory=dict)
    action_dim: int = 1
    num_logits: int = 1
    state_size: int = 1
    num_splits: int = 2
    agents_per_env: int = 1
    param_rows: int = 0
    param_width: int = 0

    def __post_init__(self):
        if self.envs_per_worker % self.num_splits:
            raise ValueError(
                f"envs_per_worker ({self.envs_per_worker}) must be divisible by num_splits "
                f"({self.num_splits})"
            )
        if self.param_width < 0 or self.param_rows < 0 or (self.param_width > 0) != (
            self.param_rows > 0
        ):
            raise ValueError(
                f"param_rows ({self.param_rows}) and param_width ({self.param_width}) must both "
                "be > 0 (a per-policy parameter table) or both 0"
            )
        if self.num_slots < self.num_agents + 1:
            raise ValueError(f"num_slots {self.num_slots} < agents {self.num_agents} + 1")

    @property
    def num_envs(self) -> int:
        return self.num_workers * self.envs_per_worker

    @property
    def num_agents(self) -> int:
        """Agents across all envs: the number of slots in flight."""
        return self.num_envs * self.agents_per_env

    @property
    def envs_per_split(self) -> int:
        return self.envs_per_worker // self.num_splits

    def arrays_spec(self) -> dict:
        s, t = self.num_slots, self.rollout
        spec = {f"obs_{k}": ((s, t + 1, *shape), dt) for k, (shape, dt) in self.obs.items()}
        spec.update(
            rnn_states=((s, t + 1, self.state_size), np.float32),
            actions=((s, t, self.action_dim), np.float32),
            log_prob_actions=((s, t), np.float32),
            action_logits=((s, t, self.num_logits), np.float32),
            values=((s, t + 1), np.float32),
            policy_version=((s, t), np.int64),
            policy_id=((s, t), np.int16),
            rewards=((s, t), np.float32),
            dones=((s, t), np.uint8),
            time_outs=((s, t), np.uint8),
            valids=((s, t), np.uint8),
            acted=((s, t), np.int64),
            slot_state=((s,), np.uint8),
            slot_owner=((s,), np.int32),
            slot_fill=((s,), np.int64),
            agent_policy=((self.num_agents,), np.int16),
            next_policy=((self.num_agents,), np.int16),
            worker_taking=((self.num_workers,), np.uint8),
            worker_heartbeat=((self.num_workers,), np.float64),
            stop=((1,), np.uint8),
        )
        if self.param_width:
            spec["policy_params"] = ((self.param_rows, self.param_width), np.float64)
        return spec


class RolloutChannels:
    """The shared arrays and queues of one sampling system (created by the owner; pickles to
    workers as attached handles). ``close()`` on the owner unlinks everything."""

    def __init__(self, layout: RolloutLayout):
        self.layout = layout
        self.arrays = SharedArrays.create(layout.arrays_spec())
        try:
            msg = 64 + 8 * max(layout.envs_per_split * layout.agents_per_env, 1)
            self.requests = Queue(max(1 << 16, 4 * layout.num_workers * layout.num_splits * msg))
            self.actions = [Queue(1 << 12) for _ in range(layout.num_workers)]
            self.trajectories = Queue(max(1 << 16, 32 * layout.num_slots))
            self.free_slots = Queue(max(1 << 16, 32 * layout.num_slots))
            self.reports = Queue(1 << 20)
        except BaseException:
            self.arrays.close()
            raise
        self.arrays["slot_owner"][:] = -1
        self.arrays["slot_fill"][:] = -1
        self.arrays["acted"][:] = -1
        for slot in range(layout.num_slots):
            self.free_slots.put(slot)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def queues(self) -> list[Queue]:
        return [self.requests, *self.actions, self.trajectories, self.free_slots, self.reports]

    def close(self) -> None:
        for q in self.queues():
            q.close()
        self.arrays.close()
