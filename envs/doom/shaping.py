"""Doom reward shaping, measurements and episode objectives (Sample Factory 2.1.1 semantics).

- :class:`GatheringShaping`: +1 whenever health increased (health-gathering scenarios, as in
  arXiv 1904.01806 and ``gathering_reward_shaping.py``).
- :class:`DeltaShaping`: ``+ sum coeff(+/-) * |delta game variable|`` with Sample Factory's
  ``REWARD_SHAPING_DEATHMATCH_V0`` (vs bots), ``_V1`` (self-play) and battle schemes, skipped on
  respawn and on the final step; DAMAGECOUNT deltas capped at 200 and HITCOUNT at 5.
- :func:`default_scheme`, :func:`scheme_vector`, :func:`scheme_from_vector`: a scheme as a flat
  float vector (the per-policy coefficients a population run sends to its envs: PBT mutates
  them per policy, as Sample Factory does, and each player shapes with its own policy's).
- :func:`measurements`: the 23-float vector of ``DoomAdditionalInput``.
- :func:`objective_frags`, :func:`objective_win`: ``true_objective`` of the multiplayer envs.
"""

from __future__ import annotations

import copy
from collections import deque

import numpy as np

__all__ = [
    "NUM_WEAPONS",
    "SCHEME_DEATHMATCH_V0",
    "SCHEME_DEATHMATCH_V1",
    "SCHEME_BATTLE",
    "GatheringShaping",
    "DeltaShaping",
    "make_shaping",
    "default_scheme",
    "override_scheme",
    "scheme_param_names",
    "scheme_vector",
    "scheme_from_vector",
    "measurements",
    "NUM_MEASUREMENTS",
    "objective_frags",
    "objective_win",
]

NUM_WEAPONS = 8
EPS = 1e-8
# Weapon preference p: pistol 1, shotguns/chaingun/rockets 5, plasma/BFG 10 (others 1).
_WEAPON_PREFERENCE = {2: 1, 3: 5, 4: 5, 5: 5, 6: 10, 7: 10}

_weapon_deltas: dict[str, tuple[float, float]] = {}
_selected: dict[str, float] = {}
for _w in range(NUM_WEAPONS):
    _p = _WEAPON_PREFERENCE.get(_w, 1)
    _weapon_deltas[f"WEAPON{_w}"] = (0.02 * _p, -0.01 * _p)
    _weapon_deltas[f"AMMO{_w}"] = (0.0002 * _p, -0.0001 * _p)
    _selected[f"SELECTED{_w}"] = 0.0002 * _p

SCHEME_DEATHMATCH_V0: dict = {
    "delta": {
        "FRAGCOUNT": (1.0, -1.5),
        "DEATHCOUNT": (-0.75, 0.75),
        "HITCOUNT": (0.01, -0.01),
        "DAMAGECOUNT": (0.003, -0.003),
        "HEALTH": (0.005, -0.003),
        "ARMOR": (0.005, -0.001),
        **_weapon_deltas,
    },
    "selected_weapon": _selected,
}
SCHEME_DEATHMATCH_V1: dict = copy.deepcopy(SCHEME_DEATHMATCH_V0)
SCHEME_DEATHMATCH_V1["delta"].update(
    {
        "FRAGCOUNT": (1.0, -0.001),
        "DEATHCOUNT": (-1.0, 1.0),
        "HITCOUNT": (0.0, 0.0),
        "DAMAGECOUNT": (0.01, -0.01),
        "HEALTH": (0.01, -0.01),
    }
)
SCHEME_BATTLE: dict = copy.deepcopy(SCHEME_DEATHMATCH_V0)

_DELTA_LIMITS = {"DAMAGECOUNT": 200.0, "HITCOUNT": 5.0}


class GatheringShaping:
    """+1 on every step whose HEALTH rose since the previous step (never on the final step)."""

    def __init__(self):
        self._prev_health: float | None = None

    def reset(self) -> None:
        self._prev_health = None

    def __call__(self, info: dict, done: bool) -> float:
        if done:
            return 0.0
        health = float(info.get("HEALTH", 0.0))
        reward = 0.0
        if self._prev_health is not None and health - self._prev_health > 0.0:
            reward = 1.0
        self._prev_health = health
        return reward


class DeltaShaping:
    """Sample Factory's ``DoomRewardShapingWrapper`` reward for one player.

    Each step adds ``coeff_up * delta`` for a rise or ``-coeff_down * delta`` for a fall of each
    scheme variable, plus the selected-weapon bonus for a loaded weapon held for 5 steps; nothing
    on the step the player respawns and nothing on the final step.
    """

    def __init__(self, scheme: dict):
        self.scheme = scheme  # replaced whole by set_scheme (e.g. another policy's), never edited
        self.prev: dict[str, float] = {}
        self.prev_dead = True
        self.selected = deque(maxlen=5)

    def reset(self) -> None:
        self.prev = {}
        self.prev_dead = True
        self.selected.clear()

    def set_scheme(self, scheme: dict) -> None:
        """Shape with ``scheme`` from the next step on (same variables: the deltas go on)."""
        if scheme["delta"].keys() != self.scheme["delta"].keys():
            raise ValueError(
                f"a shaping scheme with other variables: {sorted(scheme['delta'])} "
                f"for {sorted(self.scheme['delta'])}"
            )
        self.scheme = scheme

    def _delta_reward(self, info: dict) -> float:
        reward = 0.0
        for name, (up, down) in self.scheme["delta"].items():
            if name not in self.prev:
                continue
            delta = float(info.get(name, 0.0)) - self.prev[name]
            if name in _DELTA_LIMITS:
                delta = min(delta, _DELTA_LIMITS[name])
            if delta > EPS:
                reward += delta * up
            elif delta < -EPS:
                reward += -delta * down
        return reward

    def __call__(self, info: dict, done: bool) -> float:
        weapon = int(max(0.0, float(info.get("SELECTED_WEAPON", 0.0))))
        ammo = max(0.0, float(info.get("SELECTED_WEAPON_AMMO", 0.0)))
        self.selected.append(weapon)
        just_respawned = self.prev_dead and not info.get("DEAD", 0.0)
        reward = 0.0
        if not done and not just_respawned:
            reward = self._delta_reward(info)
            held = len(self.selected) > 4 and all(w == weapon for w in self.selected)
            if ammo > 0 and held:
                reward += self.scheme["selected_weapon"].get(f"SELECTED{weapon}", 0.0)
        for name in self.scheme["delta"]:
            self.prev[name] = float(info.get(name, 0.0))
        self.prev_dead = bool(info.get("DEAD", 0.0))
        return reward


_SCHEMES = {
    "deathmatch_v0": SCHEME_DEATHMATCH_V0,
    "deathmatch_v1": SCHEME_DEATHMATCH_V1,
    "battle": SCHEME_BATTLE,
}


def make_shaping(kind: str | None):
    """Shaping callable for a :class:`~gristmill.envs.doom.specs.DoomSpec` ``shaping`` name."""
    if kind is None:
        return None
    if kind == "gathering":
        return GatheringShaping()
    return DeltaShaping(default_scheme(kind))


def default_scheme(kind: str | None) -> dict | None:
    """A copy of the coefficient scheme of a ``shaping`` name (Sample Factory's
    ``reward_shaping_scheme``); None for no shaping and for ``gathering`` (no coefficients)."""
    if kind is None or kind == "gathering":
        return None
    if kind not in _SCHEMES:
        known = ["gathering", *_SCHEMES]
        raise ValueError(f"unknown Doom reward shaping {kind!r}; known: {known}")
    return copy.deepcopy(_SCHEMES[kind])


def override_scheme(scheme: dict | None, overrides: str) -> dict | None:
    """``scheme`` with some delta coefficients replaced: ``overrides`` is
    ``"VAR=up,down VAR=up,down ..."`` (spaces or ``;`` between entries; Sample Factory's
    ``(coeff_up, coeff_down)`` of ``reward_shaping_scheme['delta']``), e.g.
    ``"DAMAGECOUNT=0.15,-0.15"``. An empty string returns ``scheme`` unchanged; a variable the
    scheme does not have, a malformed entry, or overrides for an env without coefficients
    raise a ValueError naming it."""
    entries = [e for e in overrides.replace(";", " ").split() if e]
    if not entries:
        return scheme
    if scheme is None:
        raise ValueError(f"reward shaping overrides {overrides!r} for an env whose shaping has "
                         "no coefficients")
    out = copy.deepcopy(scheme)
    for entry in entries:
        var, _, values = entry.partition("=")
        parts = values.split(",")
        try:
            up, down = (float(v) for v in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            up = None
        if up is None:
            raise ValueError(f"reward shaping override {entry!r}: expected VAR=up,down "
                             "(two numbers)")
        if var not in out["delta"]:
            raise ValueError(f"reward shaping override {entry!r}: no variable {var!r} in the "
                             f"scheme; it has {sorted(out['delta'])}")
        out["delta"][var] = (up, down)
    return out


def _leaves(scheme: dict):
    """``(name, value)`` of every coefficient, in a fixed order: ``delta/<VAR>/up|down``, then
    ``selected_weapon/<SELECTEDw>``."""
    for var, (up, down) in scheme["delta"].items():
        yield f"delta/{var}/up", up
        yield f"delta/{var}/down", down
    for key, value in scheme["selected_weapon"].items():
        yield f"selected_weapon/{key}", value


def scheme_param_names(scheme: dict) -> tuple[str, ...]:
    """Names of the entries of :func:`scheme_vector` (``delta/FRAGCOUNT/up``, ...)."""
    return tuple(name for name, _ in _leaves(scheme))


def scheme_vector(scheme: dict) -> np.ndarray:
    """The coefficients of ``scheme`` as ``float64[len(scheme_param_names(scheme))]``."""
    return np.array([float(v) for _, v in _leaves(scheme)], dtype=np.float64)


def scheme_from_vector(template: dict, values) -> dict:
    """The scheme shaped like ``template`` holding ``values`` (inverse of :func:`scheme_vector`)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = 2 * len(template["delta"]) + len(template["selected_weapon"])
    if values.shape != (n,):
        raise ValueError(f"a shaping vector of {values.shape[0]} values for a scheme of {n}")
    it = iter(values.tolist())
    return {
        "delta": {var: (next(it), next(it)) for var in template["delta"]},
        "selected_weapon": {key: next(it) for key in template["selected_weapon"]},
    }


NUM_MEASUREMENTS = 7 + 2 * NUM_WEAPONS
MEASUREMENTS_LOW = np.array([0, 0, -1, -1, -50, 0, 0] + [0] * 16, dtype=np.float32)
MEASUREMENTS_HIGH = np.array([20, 50, 50, 50, 50, 1, 10] + [5] * 8 + [50] * 8, dtype=np.float32)


def measurements(info: dict, out: np.ndarray | None = None) -> np.ndarray:
    """Sample Factory's 23 measurements: weapon, ammo/15 (<=5), health/30, armor/30, USER2/10,
    attack-ready, players/5, 8 weapon flags, 8 ammo counts /15 (<=5). ``float32[23]``."""
    if out is None:
        out = np.zeros(NUM_MEASUREMENTS, dtype=np.float32)
    out[0] = round(max(0.0, float(info.get("SELECTED_WEAPON", 0.0))))
    out[1] = min(max(0.0, float(info.get("SELECTED_WEAPON_AMMO", 0.0))) / 15.0, 5.0)
    out[2] = max(0.0, float(info.get("HEALTH", 0.0))) / 30.0
    out[3] = float(info.get("ARMOR", 0.0)) / 30.0
    out[4] = float(info.get("USER2", 0.0)) / 10.0
    out[5] = float(info.get("ATTACK_READY", 0.0))
    out[6] = float(info.get("PLAYER_COUNT", 1.0)) / 5.0
    for w in range(NUM_WEAPONS):
        out[7 + w] = max(0.0, float(info.get(f"WEAPON{w}", 0.0)))
        out[7 + NUM_WEAPONS + w] = min(max(0.0, float(info.get(f"AMMO{w}", 0.0))) / 15.0, 5.0)
    return out


def objective_frags(info: dict) -> float:
    return float(info.get("FRAGCOUNT", 0.0))


def objective_win(info: dict) -> float:
    """1.0 only for an outright win: strictly more frags than every other player, else 0.0."""
    mine = float(info.get("FRAGCOUNT", 0.0))
    count = min(int(info.get("PLAYER_COUNT", 0)), 8)
    others = [float(info[k]) for i in range(1, count + 1) if (k := f"PLAYER{i}_FRAGCOUNT") in info]
    # PLAYERn_FRAGCOUNT lists every player, this one included: drop one entry equal to ours.
    if mine in others:
        others.remove(mine)
    return 1.0 if others and mine > max(others) else 0.0
