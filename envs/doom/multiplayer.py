"""Multiplayer Doom: free-port search, a lock-step N-player match, and game-process discovery.

A match is one host game (``-host N``) plus ``N - 1`` joining games on the loopback interface.
The host's ``init`` blocks until everyone has joined, so the players start in threads (VizDoom
releases the GIL while it waits on its game process). Ports start at 40300 (Sample Factory's
default); a port found busy, or a match that fails to start, moves on to the next port and
retries. A free UDP port is only free until a game binds it, and the host game binds it
seconds after the search: two processes searching at once would both pick it, and the second
match's joiners would then join the first one's host. So a port is also *claimed*, by binding
an abstract Unix socket named for it (Linux; the name vanishes with the socket or its
process, so a claim outlives neither the env that holds it nor a killed process), and the
search skips ports that another env claims.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from gristmill.envs.doom.game import DoomEnv, DoomEnvError, _game_args
from gristmill.envs.doom.specs import DoomSpec, doom_spec

__all__ = ["claim_free_port", "find_free_port", "DoomMultiAgentEnv", "game_processes"]

DEFAULT_PORT = int(os.environ.get("GRISTMILL_DOOM_PORT", 40300))


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _claim(port: int) -> socket.socket | None:
    """The claim on ``port`` (an abstract Unix socket), or None if another env holds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(f"\0gristmill-doom-port-{port}")
    except OSError:
        sock.close()
        return None
    return sock


def claim_free_port(
    start: int = DEFAULT_PORT, *, step: int = 1, attempts: int = 2000
) -> tuple[int, socket.socket]:
    """First UDP port ``start + k * step`` (k < attempts) that no other env claims and that is
    free on all interfaces now, and its claim: other searches skip the port until the returned
    socket is closed (or this process ends)."""
    port = start
    for _ in range(attempts):
        if port >= 65535:
            break
        claim = _claim(port)
        if claim is not None:
            if _udp_port_free(port):
                return port, claim
            claim.close()
        port += step
    raise DoomEnvError(f"no free UDP port from {start} in {attempts} tries (step {step})")


def find_free_port(start: int = DEFAULT_PORT, *, step: int = 1, attempts: int = 2000) -> int:
    """First UDP port ``start + k * step`` (k < attempts) free and unclaimed right now (no
    claim is kept: use :func:`claim_free_port` for a port a game will bind later)."""
    port, claim = claim_free_port(start, step=step, attempts=attempts)
    claim.close()
    return port


def game_processes(parent: int | None = None) -> list[int]:
    """PIDs of live VizDoom game processes, children of ``parent`` (default: any parent).

    Reads ``/proc`` (Linux); used to check that closing envs leaves no game behind.
    """
    return list(_game_args(parent))


class DoomMultiAgentEnv:
    """``num_agents`` policy-driven players in one Doom match, stepped in lock-step.

    ``reset()`` returns ``(observations, infos)`` lists with one entry per player; ``step(actions)``
    takes one action per player and returns lists ``(obs, rewards, terminated, truncated, infos)``.
    All players share frame skip (done tic by tic, Sample Factory's multi-agent wrapper), end
    together at the match time limit, and are reset together.

    Args:
      env_id: a multiplayer spec (``doom_duel``, ``doom_deathmatch_full``) or any spec with
        ``num_agents`` given.
      num_agents: players (default: the spec's).
      port: first port to try (default 40300, env ``GRISTMILL_DOOM_PORT``).
      start_retries: matches to try (each on a fresh port) before giving up.
      **env_kwargs: passed to each :class:`DoomEnv` (resolution, frame_skip, timelimit...).
    """

    def __init__(
        self,
        env_id: str | DoomSpec = "doom_duel",
        *,
        num_agents: int | None = None,
        port: int | None = None,
        start_retries: int = 3,
        **env_kwargs,
    ):
        self.spec_doom = env_id if isinstance(env_id, DoomSpec) else doom_spec(env_id)
        self.num_agents = int(num_agents or self.spec_doom.num_agents)
        if self.num_agents < 2:
            raise ValueError(f"DoomMultiAgentEnv needs >= 2 agents, got {self.num_agents}")
        self._first_port = DEFAULT_PORT if port is None else port
        self._retries = start_retries
        self._kwargs = env_kwargs
        self._pool = ThreadPoolExecutor(self.num_agents, thread_name_prefix="doom-player")
        self.envs: list[DoomEnv] = []
        self.port: int | None = None
        self._claim: socket.socket | None = None  # the port's claim while the match runs
        self.action_space = self._make(0, 0).action_space
        self.observation_space = self._probe.observation_space
        self._agent_params: dict[int, np.ndarray] = {}  # set before the match starts

    @property
    def agent_param_names(self) -> tuple[str, ...]:
        """Each player's reward-shaping coefficients (:meth:`DoomEnv.agent_param_names`)."""
        return self._probe.agent_param_names

    def set_agent_params(self, agent: int, values) -> None:
        """Player ``agent`` shapes its rewards with ``values`` from its next step on (the
        coefficients of the policy acting for it); kept for a match not started yet."""
        if not 0 <= agent < self.num_agents:
            raise ValueError(f"agent {agent} of a {self.num_agents}-player match")
        values = np.array(values, dtype=np.float64)
        self._probe.set_agent_params(0, values)  # checks the values before anything changes
        self._agent_params[agent] = values
        if self.envs:
            self.envs[agent].set_agent_params(0, values)

    def _make(self, player: int, port: int) -> DoomEnv:
        env = DoomEnv(
            self.spec_doom,
            player_id=player,
            num_players=self.num_agents,
            port=port,
            **self._kwargs,
        )
        if player == 0 and port == 0:
            self._probe = env  # only for the spaces; never started
        return env

    def _start(self) -> None:
        errors = []
        port = self._first_port
        for _ in range(self._retries):
            port, claim = claim_free_port(port)
            envs = [self._make(p, port) for p in range(self.num_agents)]
            futures = [self._pool.submit(env.init_game) for env in envs]
            failed = []
            for env, fut in zip(envs, futures):
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001 - collected and reported below
                    failed.append(f"player {env.player_id}: {exc}")
            if not failed:
                self.envs, self.port, self._claim = envs, port, claim
                for agent, values in self._agent_params.items():
                    envs[agent].set_agent_params(0, values)
                return
            for env in envs:
                env.close()
            claim.close()
            errors.append(f"port {port}: " + "; ".join(failed))
            port += 1
        raise DoomEnvError(
            f"{self.spec_doom.name}: the {self.num_agents}-player match did not start: "
            + " | ".join(errors)
        )

    def reset(self, *, seed: int | None = None):
        if not self.envs:
            self._start()
        futures = [
            self._pool.submit(env.reset, seed=None if seed is None else seed + i)
            for i, env in enumerate(self.envs)
        ]
        results = [f.result() for f in futures]
        return [r[0] for r in results], [r[1] for r in results]

    def step(self, actions):
        if not self.envs:
            raise DoomEnvError(f"{self.spec_doom.name}: step() before reset()")
        if len(actions) != self.num_agents:
            raise ValueError(f"expected {self.num_agents} actions, got {len(actions)}")
        envs = self.envs
        buttons = [env.action_buttons(a) for env, a in zip(envs, actions)]
        skip = envs[0].frame_skip
        rewards = [0.0] * len(envs)
        finished = [False] * len(envs)
        # Frame skip tic by tic with every player at the same tic (Sample Factory's wrapper):
        # a player let run its whole skip alone deadlocks the match at skip 4, its game
        # waiting for a tic command that the others only send on their next tic.
        for tic in range(skip):
            last = tic == skip - 1
            futures = [self._pool.submit(e.advance_tic, b, last) for e, b in zip(envs, buttons)]
            for i, fut in enumerate(futures):
                r, finished[i] = fut.result()
                rewards[i] += r
            if any(finished):
                break
        results = [env.complete_step(r, f) for env, r, f in zip(envs, rewards, finished)]
        return tuple(list(x) for x in zip(*results))

    def close(self) -> None:
        # Joined players first: a host closing first makes the others wait for a timeout.
        for env in reversed(self.envs):
            env.close()
        self.envs = []
        if self._claim is not None:
            self._claim.close()
            self._claim = None
        self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
