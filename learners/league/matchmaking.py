"""Match-making: which policy drives each agent, and which opponent a learner plays next.

Two sources:

- :class:`AgentPolicyMapping` -- Sample Factory 2.1.1's mapping for multi-agent envs
  (``sample_factory/algo/utils/agent_policy_mapping.py``). ``"fixed"``: env ``g`` is played by
  policy ``g % N`` (its sync mode); ``"mix"`` (``--pbt_mix_policies_in_one_env``, its default):
  every agent slot gets an independent uniform policy; ``"same"``: one uniform policy for all
  agents of the env. In the random modes the env's policies are redrawn on the request that
  makes its count a multiple of ``num_agents * resample_every`` (requests come at each agent's
  episode start, so every 10 episodes by default), and also early on (Sample Factory redraws on
  each of the first 5 requests "to make sure this code executes early in the training"; here
  only on those of them that start an episode round, so that ``"same"`` never splits an
  episode between policies -- for ``"mix"`` the distribution is unchanged).
- :class:`PFSP` -- AlphaStar's prioritized fictitious self-play (Vinyals et al., Nature 575,
  2019, supplementary pseudocode ``pfsp``): opponent B is drawn with probability
  ``f(P[A beats B]) / sum_C f(P[A beats C])`` over the :class:`~.payoff.PayoffTable`, with
  ``hard`` ``(1 - x)^k`` (k = 2 is the pseudocode's ``squared``), ``variance`` ``x (1 - x)``,
  ``linear`` ``1 - x`` or ``linear_capped`` ``min(0.5, 1 - x)``; uniform when every weight is
  below 1e-10.

Both draw from a ``numpy.random.Generator`` whose state is part of their ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gristmill.learners.league.payoff import PayoffTable

__all__ = ["AgentPolicyMapping", "PFSP", "PFSP_WEIGHTINGS", "pfsp_weights"]

PFSP_WEIGHTINGS = ("hard", "variance", "linear", "linear_capped")
_MODES = ("fixed", "mix", "same")


def pfsp_weights(win_rates, weighting: str = "hard", exponent: float = 2.0) -> np.ndarray:
    """AlphaStar's PFSP distribution over opponents.

    Args:
      win_rates: ``[K]`` the learner's win rate against each candidate, in [0, 1].
      weighting: one of :data:`PFSP_WEIGHTINGS`.
      exponent: k of ``hard`` = ``(1 - x)^k`` (AlphaStar's ``squared`` is k = 2).

    Returns:
      ``[K]`` float64 probabilities (uniform if every weight is < 1e-10).
    """
    x = np.asarray(win_rates, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"win_rates must be a non-empty 1-d sequence, got shape {x.shape}")
    if np.any(~np.isfinite(x)) or np.any((x < 0) | (x > 1)):
        raise ValueError(f"win rates must lie in [0, 1], got {x.tolist()}")
    if weighting == "hard":
        if exponent <= 0:
            raise ValueError(f"the hard weighting needs exponent > 0, got {exponent}")
        w = (1.0 - x) ** exponent
    elif weighting == "variance":
        w = x * (1.0 - x)
    elif weighting == "linear":
        w = 1.0 - x
    elif weighting == "linear_capped":
        w = np.minimum(0.5, 1.0 - x)
    else:
        raise ValueError(f"unknown PFSP weighting {weighting!r}; known: {PFSP_WEIGHTINGS}")
    total = w.sum()
    if total < 1e-10:
        return np.full(x.size, 1.0 / x.size)
    return w / total


class PFSP:
    """Draws a learner's next opponent from the payoff table by PFSP.

    Args:
      weighting, exponent: see :func:`pfsp_weights`.
      rng: the random generator (saved by :meth:`state_dict`).
    """

    def __init__(
        self,
        weighting: str = "hard",
        exponent: float = 2.0,
        rng: np.random.Generator | None = None,
    ):
        pfsp_weights([0.5], weighting, exponent)  # validates both
        self.weighting = weighting
        self.exponent = float(exponent)
        self.rng = rng if rng is not None else np.random.default_rng()

    def probabilities(
        self, payoff: PayoffTable, learner: str, opponents: Sequence[str]
    ) -> np.ndarray:
        """``[len(opponents)]`` probability of each opponent for ``learner``."""
        return pfsp_weights(payoff.win_rates(learner, opponents), self.weighting, self.exponent)

    def sample(self, payoff: PayoffTable, learner: str, opponents: Sequence[str]) -> str:
        """One opponent name for ``learner``."""
        if not opponents:
            raise ValueError(f"no opponents to choose from for {learner!r}")
        p = self.probabilities(payoff, learner, opponents)
        return opponents[int(self.rng.choice(len(opponents), p=p))]

    def state_dict(self) -> dict:
        return {
            "weighting": self.weighting,
            "exponent": self.exponent,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        pfsp_weights([0.5], state["weighting"], state["exponent"])
        self.weighting = state["weighting"]
        self.exponent = float(state["exponent"])
        self.rng.bit_generator.state = state["rng"]


class AgentPolicyMapping:
    """Sample Factory's agent -> policy mapping for multi-agent envs.

    Args:
      num_policies: N, the number of learning policies.
      num_agents: agents per env.
      mode: ``"fixed"`` (env ``global_env_idx % N``), ``"mix"`` (a uniform policy per agent)
        or ``"same"`` (one uniform policy per env).
      resample_every: the random modes redraw an env's policies every this many episodes
        (Sample Factory: 10); 1 redraws every episode.
      num_envs: total envs; ``"fixed"`` needs it divisible by N so that every policy gets the
        same amount of experience (Sample Factory asserts the same).
      rng: the random generator (saved by :meth:`state_dict`).
    """

    EARLY_REQUESTS = 5

    def __init__(
        self,
        num_policies: int,
        num_agents: int,
        mode: str = "mix",
        resample_every: int = 10,
        num_envs: int | None = None,
        rng: np.random.Generator | None = None,
    ):
        if mode not in _MODES:
            raise ValueError(f"unknown mapping mode {mode!r}; known: {_MODES}")
        if num_policies < 1 or num_agents < 1 or resample_every < 1:
            raise ValueError(
                "num_policies, num_agents and resample_every must be >= 1, got "
                f"{num_policies}, {num_agents}, {resample_every}"
            )
        if mode == "fixed" and num_envs is not None and num_envs % num_policies:
            raise ValueError(
                f"mode 'fixed' needs the number of envs ({num_envs}) divisible by "
                f"num_policies ({num_policies})"
            )
        self.num_policies = num_policies
        self.num_agents = num_agents
        self.mode = mode
        self.resample_every = resample_every
        self.rng = rng if rng is not None else np.random.default_rng()
        self._env_policies: dict[int, list[int]] = {}
        self._requests: dict[int, int] = {}

    def policy_for_agent(self, agent_idx: int, env_idx: int, global_env_idx: int = 0) -> int:
        """The policy of agent ``agent_idx`` for the episode it is starting.

        Call it once per agent at each episode start. ``env_idx`` keys the env's draws;
        ``global_env_idx`` is the env's index over the whole run (used by ``"fixed"``).
        """
        if not 0 <= agent_idx < self.num_agents:
            raise ValueError(f"agent_idx {agent_idx} is outside [0, {self.num_agents})")
        if self.mode == "fixed":
            return global_env_idx % self.num_policies
        n = self._requests.get(env_idx, 0)
        early = n < self.EARLY_REQUESTS and n % self.num_agents == 0
        if n % (self.num_agents * self.resample_every) == 0 or early:
            if self.mode == "mix":
                self._env_policies[env_idx] = [self._draw() for _ in range(self.num_agents)]
            else:
                self._env_policies[env_idx] = [self._draw()] * self.num_agents
        self._requests[env_idx] = n + 1
        return self._env_policies[env_idx][agent_idx]

    def _draw(self) -> int:
        return int(self.rng.integers(self.num_policies))

    def state_dict(self) -> dict:
        return {
            "env_policies": {str(k): v for k, v in self._env_policies.items()},
            "requests": {str(k): v for k, v in self._requests.items()},
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        policies = {int(k): [int(p) for p in v] for k, v in state["env_policies"].items()}
        for env, ps in policies.items():
            if len(ps) != self.num_agents or not all(0 <= p < self.num_policies for p in ps):
                raise ValueError(
                    f"mapping state for env {env} ({ps}) does not fit {self.num_agents} agents "
                    f"and {self.num_policies} policies"
                )
        self._env_policies = policies
        self._requests = {int(k): int(v) for k, v in state["requests"].items()}
        self.rng.bit_generator.state = state["rng"]
