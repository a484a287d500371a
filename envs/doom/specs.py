"""The Doom scenarios gristmill ships: one :class:`DoomSpec` per env id.

Mirrors Sample Factory 2.1.1's ``DOOM_ENVS`` table (``sf_examples/vizdoom/doom/doom_utils.py``)
on the scenario files that ship inside the vizdoom wheel. Where Sample Factory ships its own
``.cfg`` (different button lists), the spec overrides the wheel config's buttons so the action
spaces are exactly Sample Factory's. Maps that need files outside the wheel (battle, dwango5,
ssl2) are replaced by the wheel's deathmatch maps (``multi_duel.wad``, ``multi_deathmatch.wad``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gristmill.envs.doom import spaces as dspaces
from gymnasium import spaces

__all__ = ["DoomSpec", "DOOM_ENVS", "doom_spec", "doom_env_ids"]

# Game variables read by the measurements vector and the deathmatch reward shaping.
FULL_VARIABLES = (
    ["SELECTED_WEAPON", "SELECTED_WEAPON_AMMO", "HEALTH", "ARMOR", "USER2", "ATTACK_READY"]
    + ["PLAYER_COUNT", "FRAGCOUNT", "DEATHCOUNT", "HITCOUNT", "DAMAGECOUNT", "DEAD", "KILLCOUNT"]
    + [f"WEAPON{i}" for i in range(8)]
    + [f"AMMO{i}" for i in range(8)]
    + [f"PLAYER{i}_FRAGCOUNT" for i in range(1, 9)]
)
FULL_BUTTONS = (
    ["MOVE_FORWARD", "MOVE_BACKWARD", "MOVE_RIGHT", "MOVE_LEFT"]
    + [f"SELECT_WEAPON{i}" for i in range(1, 8)]
    + ["ATTACK", "SPEED"]
)


@dataclass(frozen=True)
class DoomSpec:
    """How to build one Doom scenario.

    Attributes:
      name: env id (``doom_basic``...).
      config: ``.cfg`` file name inside ``vizdoom.scenarios_path`` (or an absolute path).
      action_space: factory of the gymnasium action space (Sample Factory's).
      buttons: VizDoom button names replacing the config's list (None keeps the config's).
      variables: game variables replacing the config's list (None keeps the config's).
      reward_scale: multiplies the (shaped) reward (Sample Factory's ``reward_scaling``).
      timeout: episode limit in env frames (Sample Factory's ``TimeLimitWrapper`` counts
        ``info["num_frames"]``, i.e. frame-skipped tics: 2100 is 525 steps at frame skip 4),
        ``-1`` for the game's own timeout only.
      shaping: ``None``, ``"gathering"`` (+1 per health gain), ``"deathmatch_v0"`` (vs bots),
        ``"deathmatch_v1"`` (self-play) or ``"battle"``.
      objective: ``"reward"`` (env reward), ``"frags"`` or ``"win"`` (1.0 for an outright win).
      measurements: add Sample Factory's 23-float measurements vector (dict observation).
      num_agents, num_bots: players driven by policies and built-in bots (multiplayer if
        ``num_agents > 1`` or ``num_bots > 0``).
      respawn_delay: seconds before a dead player respawns (multiplayer).
      timelimit: multiplayer match length in minutes.
      doom_map: map to load (None keeps the config's).
      render: VizDoom render flags set after the config (``("hud", True)`` calls
        ``set_render_hud(True)``): Sample Factory's ``.cfg`` values where the wheel's differ.
      living_reward, death_penalty: override the config's game rewards (None keeps them);
        Sample Factory's health_gathering .cfg files give 0.01 per tic and no death penalty
        where the wheel's give 1 and 100.
    """

    name: str
    config: str
    action_space: Callable[[], spaces.Space]
    buttons: tuple[str, ...] | None = None
    variables: tuple[str, ...] | None = None
    reward_scale: float = 1.0
    timeout: int = -1
    shaping: str | None = None
    objective: str = "reward"
    measurements: bool = False
    num_agents: int = 1
    num_bots: int = 0
    respawn_delay: int = 0
    timelimit: float = 4.0
    doom_map: str | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    render: tuple[tuple[str, bool], ...] = ()
    living_reward: float | None = None
    death_penalty: float | None = None

    @property
    def multiplayer(self) -> bool:
        return self.num_agents > 1 or self.num_bots > 0


def _d(n: int) -> Callable[[], spaces.Space]:
    return lambda: spaces.Discrete(n)


_TURN_MOVE = ("TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD", "MOVE_BACKWARD")
# Sample Factory's scenario .cfg render options where the vizdoom wheel's differ: its agents
# see the status bar (the 3D view is the top ~84% of the frame), no decals or particles.
_NO_FX = (("decals", False), ("particles", False))
_SF_HUD = (("hud", True), *_NO_FX)
_SF_HUD_FLASH = (*_SF_HUD, ("screen_flashes", True))
_SF_GATHER = (("weapon", False), *_NO_FX, ("screen_flashes", True))
_FULL = tuple(FULL_VARIABLES)

DOOM_ENVS: tuple[DoomSpec, ...] = (
    # idle, left, right, attack
    DoomSpec("doom_basic", "basic.cfg", _d(4), reward_scale=0.01, timeout=300, render=_SF_HUD),
    DoomSpec(
        "doom_my_way_home",
        "my_way_home.cfg",
        dspaces.space_basic,
        buttons=_TURN_MOVE,
        render=_NO_FX,
    ),
    DoomSpec(
        "doom_my_way_home_flat_actions",
        "my_way_home.cfg",
        _d(5),
        buttons=_TURN_MOVE,
        render=_NO_FX,
    ),
    DoomSpec(
        "doom_deadly_corridor",
        "deadly_corridor.cfg",
        dspaces.space_extended,
        buttons=_TURN_MOVE + ("MOVE_LEFT", "MOVE_RIGHT", "ATTACK"),
        reward_scale=0.01,
        render=_SF_HUD_FLASH,
    ),
    DoomSpec(
        "doom_defend_the_center",
        "defend_the_center.cfg",
        dspaces.space_turn_and_attack,
        buttons=("TURN_LEFT", "TURN_RIGHT", "ATTACK"),
        render=_SF_HUD_FLASH,
    ),
    DoomSpec(
        "doom_defend_the_center_flat_actions",
        "defend_the_center.cfg",
        _d(4),
        buttons=("TURN_LEFT", "TURN_RIGHT", "ATTACK"),
        render=_SF_HUD_FLASH,
    ),
    DoomSpec(
        "doom_defend_the_line",
        "defend_the_line.cfg",
        dspaces.space_turn_and_attack,
        buttons=("TURN_LEFT", "TURN_RIGHT", "ATTACK"),
        render=_SF_HUD_FLASH,
    ),
    DoomSpec(
        "doom_health_gathering",
        "health_gathering.cfg",
        _d(5),
        buttons=_TURN_MOVE,
        variables=("HEALTH",),
        shaping="gathering",
        render=_SF_GATHER,
        living_reward=0.01,
        death_penalty=0.0,
    ),
    DoomSpec(
        "doom_health_gathering_supreme",
        "health_gathering_supreme.cfg",
        _d(5),
        buttons=_TURN_MOVE,
        variables=("HEALTH",),
        shaping="gathering",
        render=_SF_GATHER,
        living_reward=0.01,
        death_penalty=0.0,
    ),
    DoomSpec(
        "doom_take_cover",
        "take_cover.cfg",
        _d(3),
        buttons=("MOVE_LEFT", "MOVE_RIGHT"),
    ),
    DoomSpec(
        "doom_predict_position",
        "predict_position.cfg",
        dspaces.space_turn_and_attack,
        buttons=("TURN_LEFT", "TURN_RIGHT", "ATTACK"),
    ),
    # Single-player arena against monsters, with the "battle" measurements and shaping.
    DoomSpec(
        "doom_deathmatch",
        "deathmatch.cfg",
        dspaces.space_discretized_no_weapons,
        buttons=("MOVE_FORWARD", "MOVE_BACKWARD", "MOVE_RIGHT", "MOVE_LEFT", "ATTACK", "SPEED")
        + ("TURN_LEFT_RIGHT_DELTA",),
        variables=_FULL,
        shaping="battle",
        measurements=True,
        timeout=2100,
    ),
    # Multiplayer deathmatch against built-in bots (one agent).
    DoomSpec(
        "doom_deathmatch_bots",
        "multi.cfg",
        lambda: dspaces.space_full_discretized(with_use=False),
        buttons=tuple(FULL_BUTTONS) + ("TURN_LEFT_RIGHT_DELTA",),
        variables=_FULL,
        shaping="deathmatch_v0",
        objective="frags",
        measurements=True,
        num_bots=7,
        doom_map="map01",
    ),
    DoomSpec(
        "doom_duel_bots",
        "multi_duel.cfg",
        lambda: dspaces.space_full_discretized(with_use=True),
        buttons=tuple(FULL_BUTTONS) + ("USE", "TURN_LEFT_RIGHT_DELTA"),
        variables=_FULL,
        shaping="deathmatch_v0",
        objective="frags",
        measurements=True,
        num_bots=1,
        respawn_delay=2,
        doom_map="map01",
    ),
    # Self-play: several policy-driven players in one match.
    DoomSpec(
        "doom_duel",
        "multi_duel.cfg",
        lambda: dspaces.space_full_discretized(with_use=True),
        buttons=tuple(FULL_BUTTONS) + ("USE", "TURN_LEFT_RIGHT_DELTA"),
        variables=_FULL,
        shaping="deathmatch_v1",
        objective="win",
        measurements=True,
        num_agents=2,
        respawn_delay=2,
        doom_map="map01",
    ),
    DoomSpec(
        "doom_deathmatch_full",
        "multi.cfg",
        lambda: dspaces.space_full_discretized(with_use=True),
        buttons=tuple(FULL_BUTTONS) + ("USE", "TURN_LEFT_RIGHT_DELTA"),
        variables=_FULL,
        shaping="deathmatch_v1",
        objective="win",
        measurements=True,
        num_agents=4,
        num_bots=4,
        respawn_delay=2,
        doom_map="map01",
    ),
    # Throughput benchmark (Sample Factory's doom_benchmark uses battle.cfg, not in the wheel).
    DoomSpec(
        "doom_benchmark",
        "defend_the_center.cfg",
        _d(9),
        buttons=("MOVE_FORWARD", "MOVE_BACKWARD", "MOVE_RIGHT", "MOVE_LEFT")
        + ("TURN_LEFT", "TURN_RIGHT", "ATTACK", "SPEED"),
        timeout=2100,
    ),
)

_BY_NAME = {s.name: s for s in DOOM_ENVS}


def doom_env_ids() -> list[str]:
    """All registered Doom env ids."""
    return list(_BY_NAME)


def doom_spec(name: str) -> DoomSpec:
    """The :class:`DoomSpec` for ``name``; raises ``KeyError`` listing the known ids."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown Doom env {name!r}; known: {', '.join(_BY_NAME)}") from None
