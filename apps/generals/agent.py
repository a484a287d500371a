"""The trained network as a player: batched for the engine, as a bot, and as a generals-bots
agent.

- :class:`Policy`: a :class:`GeneralsNet` plus its input layout (memory history), saved and
  loaded as one checkpoint file (``save``/``load``; atomic).
- :class:`NetBot`: the :class:`gristmill.envs.generals.Bot` interface
  (``act(obs, masks, scalars, seats, out)`` over N boards), keeping memory features per board
  and seat; usable wherever a bot is: the tournament tool, ``GeneralsEnv(opponent=...)``.
  :class:`NetPlayer` is its factory (``spawn(num_boards, seed)``), named for tables.
- :class:`ReversalBan`: every seat the network plays may not move an army straight back to the
  cell it came from on the previous tick (masked out of the move mask). A policy cloned from
  the ``general`` bot, whose gather moves walk a stack in a random direction, cannot predict
  that direction and averages it; played greedily or at a low temperature it then steps a stack
  there and back forever: 23-37 % of its moves were such reversals (the bot's 7 %), it saw the
  enemy general in 25-43 % of its games against ``random`` (the bot 96 %) and won none of the
  others. Banning the reversal nearly doubled its wins there (sampling: 17 of 100 -> 48 of 200;
  temperature 0.25: 54 -> 96 of 200). Self-play applies it to the learner's stored masks, so
  PPO's log-probabilities are those of the policy that played.
- :class:`GeneralsBotsAgent`: generals-bots' agent interface ``act(observation) -> action``
  for one seat, the observation duck-typed as generals-bots 2.5.0's ``Observation``; memory
  persists across calls and resets when a new game starts (the tick goes back). ``act_planes``
  takes gristmill's Gymnasium/PettingZoo 15-plane observation instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gristmill.envs.generals import AgentFeatures
from gristmill.envs.generals.agent_input import (
    INPUT_LAYOUT,
    num_agent_channels,
    widen_input_layout,
)
from gristmill.envs.generals.observation import compact_from_fields, compact_from_planes, move_mask
from gristmill.learners.generals_net import (
    GeneralsNet,
    GeneralsNetConfig,
    MaskedPolicy,
    index_to_action,
)
from gristmill.learners.league import atomic_torch_save

__all__ = ["GeneralsBotsAgent", "NetBot", "NetPlayer", "Policy", "ReversalBan"]


class Policy:
    """Network + input layout. ``Policy.create(channels=..., ...)`` or ``Policy.load(path)``."""

    def __init__(self, net: GeneralsNet, history: int = 7, device: str | torch.device = "cpu"):
        self.net = net.to(device)
        self.history = history
        self.device = torch.device(device)
        if net.cfg.in_channels != num_agent_channels(history):
            raise ValueError(f"net takes {net.cfg.in_channels} channels, history={history} "
                             f"makes {num_agent_channels(history)}")

    @classmethod
    def create(cls, pad_to: int = 24, history: int = 7, device="cpu", **sizes) -> Policy:
        cfg = GeneralsNetConfig(num_agent_channels(history), pad_to=pad_to, **sizes)
        return cls(GeneralsNet(cfg), history, device)

    @property
    def pad_to(self) -> int:
        return self.net.cfg.pad_to

    def state(self) -> dict:
        return {"format": "gristmill-generals-policy/1", "net": self.net.cfg.to_dict(),
                "history": self.history, "input_layout": INPUT_LAYOUT,
                "weights": {k: v.detach().cpu() for k, v in self.net.state_dict().items()}}

    def save(self, path: str | Path) -> Path:
        atomic_torch_save(self.state(), str(path))
        return Path(path)

    @classmethod
    def from_state(cls, state: dict, device="cpu") -> Policy:
        if state.get("format") != "gristmill-generals-policy/1":
            raise ValueError(f"not a gristmill Generals policy (format={state.get('format')!r})")
        layout = state.get("input_layout", 1)  # files before layout 2 did not say
        cfg, weights = dict(state["net"]), dict(state["weights"])
        if layout != INPUT_LAYOUT:
            # an older input layout: zero weights on the planes added since, same outputs
            w = weights["stem.weight"]
            weights["stem.weight"] = torch.from_numpy(widen_input_layout(w.numpy(), layout))
            cfg["in_channels"] = weights["stem.weight"].shape[1]
        net = GeneralsNet(GeneralsNetConfig(**cfg))
        net.load_state_dict(weights)
        return cls(net, state["history"], device)

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> Policy:
        """A policy file, or a training checkpoint holding one under ``"policy"``."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "policy" in state:
            state = state["policy"]
        return cls.from_state(state, device)

    def copy(self) -> Policy:
        return Policy.from_state(self.state(), self.device)

    def with_weights(self, weights: dict) -> Policy:
        """A copy of this policy holding ``weights`` (e.g. a league snapshot's)."""
        p = self.copy()
        p.net.load_state_dict(weights)
        return p

    @torch.no_grad()
    def choose(self, planes: np.ndarray, masks: np.ndarray, greedy: bool = False,
               temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """planes float32 [K, C, S, S], masks [K, S, S, 4] -> (index [K], log-prob [K],
        value [K]) as NumPy."""
        x = torch.from_numpy(planes).to(self.device)
        m = torch.from_numpy(np.ascontiguousarray(masks)).to(self.device)
        logits, value = self.net(x, m)
        d = MaskedPolicy(logits)
        idx = d.greedy() if greedy else d.sample(temperature)
        return idx.cpu().numpy(), d.log_prob(idx).cpu().numpy(), value.cpu().numpy()


class ReversalBan:
    """The reverse of each seat's last move, to ban from its next move mask (see the module
    docstring). ``ban(boards, players, masks, ticks)`` clears it in the masks of those seats
    (``masks [K, S, S, 4]``, changed in place; nothing on a game's tick 0);
    ``record(boards, players, actions)`` notes the moves just chosen (``actions [K, 5]``)."""

    _DR = np.array([-1, 1, 0, 0])
    _DC = np.array([0, 0, -1, 1])

    def __init__(self, num_boards: int, players: int = 2):
        self.back = np.full((num_boards, players, 3), -1, np.int64)  # row, col, direction

    def ban(self, boards, players, masks: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        back = self.back[boards, players]
        k = np.flatnonzero((back[:, 0] >= 0) & (np.asarray(ticks) > 0))
        masks[k, back[k, 0], back[k, 1], back[k, 2]] = 0
        return masks

    def record(self, boards, players, actions: np.ndarray) -> None:
        a = np.asarray(actions)
        d = a[:, 3]
        back = np.stack([a[:, 1] + self._DR[d], a[:, 2] + self._DC[d], d ^ 1], 1)
        back[a[:, 0] != 0] = -1  # a pass bans nothing
        self.back[boards, players] = back


class NetBot:
    """A policy playing seats of N boards with the :class:`Bot` interface."""

    def __init__(self, policy: Policy, num_boards: int, name: str = "net", greedy: bool = False,
                 seed: int | None = None, temperature: float = 1.0):
        self.policy, self.num_boards, self.name, self.greedy = policy, num_boards, name, greedy
        self.temperature = temperature
        self.features = AgentFeatures(num_boards, policy.pad_to, policy.history)
        self.reversals = ReversalBan(num_boards)
        if seed is not None:
            torch.manual_seed(seed)

    def observe(self, obs: np.ndarray, scalars: np.ndarray) -> None:
        """Update memory with this tick's compact views of both seats (once per tick)."""
        self.features.update(obs, scalars)
        self._ticks = scalars[..., 4]

    def choose(self, boards: np.ndarray, players: np.ndarray, masks: np.ndarray, out=None):
        """Action indices etc. for seats ``(boards[k], players[k])`` of the observed tick; see
        :meth:`Policy.choose`. Writes engine actions into ``out[boards, players]`` when given."""
        planes = self.features.planes(boards, players)
        m = self.reversals.ban(boards, players, masks[boards, players],
                               self._ticks[boards, players])
        res = self.policy.choose(planes, m, self.greedy, self.temperature)
        actions = index_to_action(res[0], self.policy.pad_to)
        self.reversals.record(boards, players, actions)
        if out is not None:
            out[boards, players] = actions
        return res

    def act(self, obs, masks, scalars, seats=(True, True), out=None):
        """Bot interface: write (and return) actions int32 [N, 2, 5] for the seated players
        (``seats`` bool [2] for every board, or [N, 2] per board)."""
        n = self.num_boards
        if out is None:
            out = np.zeros((n, 2, 5), np.int32)
            out[:, :, 0] = 1
        self.observe(obs, scalars)
        seats = np.asarray(seats, bool)
        if seats.shape == (2,):
            seats = np.broadcast_to(seats, (n, 2))
        if seats.shape != (n, 2):
            raise ValueError(f"seats must be bool [2] or [{n}, 2], got {seats.shape}")
        b, p = np.nonzero(seats)
        if len(b):
            self.choose(b, p, masks, out)
        return out


class NetPlayer:
    """A policy as a tournament entrant: ``spawn(num_boards, seed)`` makes its :class:`NetBot`,
    which samples its moves at ``temperature`` (argmax with ``greedy``)."""

    def __init__(self, policy: Policy, name: str = "net", greedy: bool = False,
                 temperature: float = 1.0):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (greedy=True for argmax), got "
                             f"{temperature}")
        self.policy, self.name, self.greedy, self.temperature = policy, name, greedy, temperature

    @classmethod
    def load(cls, path: str | Path, greedy: bool = False, temperature: float = 1.0) -> NetPlayer:
        return cls(Policy.load(path), Path(path).stem, greedy, temperature)

    def spawn(self, num_boards: int, seed: int | None = None) -> NetBot:
        return NetBot(self.policy, num_boards, self.name, self.greedy, seed, self.temperature)


class GeneralsBotsAgent:
    """generals-bots' agent interface: ``act(observation) -> action`` (int32 [5] =
    [pass, row, col, direction, split]); one game at a time, memory kept between calls."""

    def __init__(self, policy: Policy | str | Path, id: str = "gristmill", greedy: bool = True):
        self.policy = policy if isinstance(policy, Policy) else Policy.load(policy)
        self.id = id
        self.greedy = greedy
        self.reset()

    def reset(self) -> None:
        """Forget the game (called automatically when the tick goes back)."""
        self.features = AgentFeatures(1, self.policy.pad_to, self.policy.history, players=1)
        self.reversals = ReversalBan(1, players=1)
        self._last_tick = -1

    def act(self, observation) -> np.ndarray:
        obs, scalars = compact_from_fields(observation, self.policy.pad_to)
        return self._act(obs, scalars)

    def act_planes(self, planes: np.ndarray) -> np.ndarray:
        """The same from gristmill's Gymnasium/PettingZoo observation (15 planes)."""
        obs, scalars = compact_from_planes(planes)
        if obs.shape[0] != self.policy.pad_to:
            raise ValueError(f"planes are {obs.shape[0]} wide, the policy takes "
                             f"{self.policy.pad_to}")
        return self._act(obs, scalars)

    def _act(self, obs: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        t = int(scalars[4])
        if t <= self._last_tick:
            self.reset()
        self._last_tick = t
        self.features.update(obs[None, None], scalars[None, None])
        zero = np.zeros(1, np.int64)
        planes = self.features.planes(zero, zero)
        mask = self.reversals.ban(zero, zero, move_mask(obs)[None], np.array([t]))
        idx, _, _ = self.policy.choose(planes, mask, self.greedy)
        action = index_to_action(idx, self.policy.pad_to)
        self.reversals.record(zero, zero, action)
        return action[0]
