"""``GeneralsEngine``: N Generals.io boards stepped together by one Numba kernel.

Rules: generals-bots 2.5.0 exactly (checked tick by tick against it by
``tests/envs/generals/test_differential.py``). One :meth:`GeneralsEngine.step` is one tick (half
a generals.io turn) in which both players act:

1. the two moves resolve one after the other, in the order of the ``priority`` rule; a move
   sends all but one (or half, floor) of the source's army and needs a source still owned
   with >= 2 army and a target on the board that is not a mountain, otherwise it is a pass
   (status 2). Onto an own cell the armies add; otherwise the target keeps |defender - attacker|
   and changes hands only if the attacker was strictly larger (a tie leaves 0 to the defender);
2. capturing the enemy general ends the game at once: the other player's move, if it comes
   second, is skipped (status 3), so of two simultaneous general captures the first mover's
   wins; the loser's cells all pass to the winner (armies unchanged);
3. the time advances; unless the game ended, owned generals and cities grow by 1 on even
   ticks and every owned cell by 1 on multiples of 50 (neutral cities never grow);
4. vision: each player sees its own cells and their 8 neighbours; fogged mountains and cities
   both look like obstacles, fogged generals like fog.

One deliberate difference: armies are int32 here, int16 in generals-bots (which would wrap
past 32,767 army on one cell, far beyond any real game's length).

State (per board ``b``, padded to ``S = pad_to``; padding is mountain):

- ``terrain`` uint8 [N, S, S] (maps.PLAIN/MOUNTAIN/CITY/GENERAL), ``owner`` int8 [N, S, S]
  (-1 neutral, 0, 1), ``army`` int32 [N, S, S], ``dims`` int32 [N, 2], ``gens`` int32 [N, 2, 2],
  ``time`` int32 [N], ``winner`` int8 [N] (-1 while running).

Outputs, preallocated and written in place every step (views; copy what you keep):

- ``obs`` int32 [N, 2, S, S]: compact cells (:mod:`.encoding`), ``scalars`` int32 [N, 2, 5];
- ``masks`` uint8 [N, 2, S, S, 4]: valid moves (owned, army >= 2, target on the board and not a
  mountain), generals-bots ``compute_valid_move_mask``; passing is always valid;
- ``rewards`` float32 [N, 2], ``terminated``/``truncated`` bool [N];
- ``status`` uint8 [N, 2]: per player 0 pass, 1 moved, 2 invalid (counted as a pass), 3 skipped
  (the other player's move ended the game first).

Finished boards auto-reset, on a fresh map drawn inside the kernel (``fresh_maps``, default) or
on one from a pool (explicit layouts): ``autoreset="next_step"`` (Gymnasium's
default: the step after the last one ignores the actions and returns the first observation of a
new game) or ``"same_step"`` (the new game's first observation replaces the final one; rewards,
flags, ``episode_length`` and ``episode_winner`` describe the game that ended).
"""

from __future__ import annotations

import sys
from collections import namedtuple
from collections.abc import Sequence

import numpy as np
from gristmill.kernels.args import flag, whole

from . import _kernels as K
from ._mapgen import GEN_GENERALSIO, GEN_UNIFORM
from .maps import DEFAULT_PAD, MapArrays, MapGenerator, format_map, parse_map

State = namedtuple(
    "State", "terrain owner army dims gens time winner pending invalid_count nbr start_army"
)

PRIORITY_RULES = {
    "priority": K.RULE_PRIORITY,
    "alternating": K.RULE_ALTERNATING,
    "smaller_first": K.RULE_SMALLER_FIRST,
}
REWARDS = {"winlose": K.REWARD_WINLOSE, "shaped": K.REWARD_SHAPED}
AUTORESET = ("next_step", "same_step")

__all__ = ["AUTORESET", "PRIORITY_RULES", "REWARDS", "GeneralsEngine", "MapPool"]


class MapPool:
    """Starting maps as stacked arrays ``terrain [P, S, S]``, ``army``, ``dims [P, 2]``, ``gens``.

    Built from a :class:`MapGenerator` (``size`` draws) or from explicit layouts.
    """

    def __init__(self, maps: Sequence[MapArrays]):
        if not maps:
            raise ValueError("a map pool needs at least one map")
        pads = {m.pad_to for m in maps}
        if len(pads) != 1:
            raise ValueError(f"maps in one pool must share pad_to, got {sorted(pads)}")
        self.pad_to = pads.pop()
        self.terrain = np.ascontiguousarray(np.stack([m.terrain for m in maps]))
        self.army = np.ascontiguousarray(np.stack([m.army for m in maps]))
        self.dims = np.array([m.dims for m in maps], dtype=np.int32)
        self.gens = np.ascontiguousarray(np.stack([m.generals for m in maps]).astype(np.int32))

    @classmethod
    def from_generator(cls, gen: MapGenerator, size: int, pad_to: int) -> MapPool:
        return cls([gen.generate_arrays(pad_to) for _ in range(size)])

    @classmethod
    def from_layouts(cls, layouts: Sequence[str], pad_to: int) -> MapPool:
        return cls([parse_map(s, pad_to) for s in layouts])

    def __len__(self) -> int:
        return len(self.dims)

    def map(self, k: int) -> MapArrays:
        return MapArrays(self.terrain[k], self.army[k], tuple(self.dims[k]), self.gens[k])


class GeneralsEngine:
    """N boards of Generals.io in arrays, stepped by one Numba kernel.

    Args:
        num_boards: N.
        maps: a :class:`MapGenerator`, ``"uniform"``/``"generalsio"`` (a generator with
            generals-bots' defaults), or a list of character layouts; boards reset from a pool.
        pad_to: S, the side of every observation; maps larger than it are rejected.
        truncation: end a game (``truncated``) once ``time >= truncation``; ``None`` never.
        priority: move-order rule, ``"priority"`` (generals-bots 2.5.0: chasing, then
            reinforcing, then the larger army, ties to player 0), ``"alternating"`` (player
            ``t mod 2`` first) or ``"smaller_first"`` (generals-bots' JAX rewrite).
        reward: ``"winlose"`` (+1/-1 on the capture, 0 on truncation) or ``"shaped"`` (plus the
            paper's potential difference with gamma = 1; Phi = 0 at the game's end, truncation
            included, so a game's shaped return is its outcome minus Phi(start)).
        autoreset: ``"next_step"`` or ``"same_step"`` (module docstring).
        pool_size: maps drawn from a generator for the reset pool (``refresh_pool`` redraws).
        fresh_maps: with a generator, every auto-reset draws a *new* map inside the kernel (the
            same algorithm as the generator, on the board's own random stream; generals-bots'
            ``general_positions`` option is pool-only). ``False``: reset from the pool only,
            whose maps are generals-bots' ``GridFactory`` maps draw for draw.
        seed: seeds the map generator and the per-board RNGs that pick pool maps.
        parallel: step boards on Numba's thread pool (``prange``) instead of one thread. It pays
            with idle cores; with Numba's OpenMP layer set ``OMP_WAIT_POLICY=PASSIVE`` (or
            ``NUMBA_THREADING_LAYER=workqueue``) so that spinning threads do not steal them.
    """

    def __init__(
        self,
        num_boards: int = 1,
        maps: MapGenerator | str | Sequence[str] = "uniform",
        pad_to: int = DEFAULT_PAD,
        truncation: int | None = None,
        priority: str = "priority",
        reward: str = "winlose",
        autoreset: str = "next_step",
        pool_size: int | None = None,
        seed: int | None = None,
        parallel: bool = False,
        fresh_maps: bool = True,
    ):
        num_boards = whole("num_boards", num_boards, 1)
        pad_to = whole("pad_to", pad_to, 1)
        if truncation is not None:
            truncation = whole("truncation", truncation, 1)
        if pool_size is not None:
            pool_size = whole("pool_size", pool_size, 1)
        if seed is not None:
            seed = whole("seed", seed, 0)
        parallel, fresh_maps = flag("parallel", parallel), flag("fresh_maps", fresh_maps)
        if maps is None or not isinstance(maps, (MapGenerator, str, Sequence, np.ndarray)):
            raise TypeError(f"maps must be a MapGenerator, 'uniform'/'generalsio' or a list of "
                            f"layouts, got {maps!r}")  # fmt: skip
        if priority not in PRIORITY_RULES:
            raise ValueError(f"priority must be one of {sorted(PRIORITY_RULES)}, got {priority!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {sorted(REWARDS)}, got {reward!r}")
        if autoreset not in AUTORESET:
            raise ValueError(f"autoreset must be one of {AUTORESET}, got {autoreset!r}")
        self.num_boards = n = int(num_boards)
        self.pad_to = S = int(pad_to)
        self.truncation = truncation
        self.priority = priority
        self.reward = reward
        self.autoreset = autoreset
        self.parallel = parallel
        self._rule = PRIORITY_RULES[priority]
        self._gen_params = np.zeros(6, np.float64)  # mode 0: reset from the pool
        self._reward_kind = REWARDS[reward]
        seeds = np.random.SeedSequence(seed)
        gen_seed, rng_seed = seeds.spawn(2)

        if isinstance(maps, str):
            maps = MapGenerator(maps, seed=gen_seed.generate_state(1)[0])
        self.generator: MapGenerator | None = None
        if isinstance(maps, MapGenerator):
            self.generator = maps
            if maps.max_side > S:
                raise ValueError(f"generator makes sides up to {maps.max_side} > pad_to={S}")
            fresh = fresh_maps and maps.general_positions is None
            default = 2 if fresh else max(16, min(256, 2 * n))  # fresh: the pool is a fallback
            self.pool_size = int(pool_size) if pool_size is not None else default
            self.pool = MapPool.from_generator(maps, self.pool_size, S)
            if fresh:
                self._gen_params = np.array(
                    [GEN_UNIFORM if maps.mode == "uniform" else GEN_GENERALSIO,
                     maps.min_grid_dims[0], maps.max_grid_dims[0], maps.mountain_density,
                     maps.city_density, maps.min_generals_distance], np.float64)
        else:
            layouts = list(maps)
            self.pool = MapPool.from_layouts(layouts, S)
            self.pool_size = len(self.pool)

        self.state = State(
            terrain=np.zeros((n, S, S), np.uint8),
            owner=np.full((n, S, S), -1, np.int8),
            army=np.zeros((n, S, S), np.int32),
            dims=np.zeros((n, 2), np.int32),
            gens=np.zeros((n, 2, 2), np.int32),
            time=np.zeros(n, np.int32),
            winner=np.full(n, -1, np.int8),
            pending=np.zeros(n, np.uint8),
            invalid_count=np.zeros((n, 2), np.int32),
            nbr=np.zeros((n, S, S), np.uint32),
            start_army=np.zeros((n, S, S), np.int32),
        )
        self.obs = np.zeros((n, 2, S, S), np.int32)
        self.masks = np.zeros((n, 2, S, S, 4), np.uint8)
        if sys.byteorder != "little":
            raise RuntimeError("the engine packs move masks as little-endian uint32 words")
        self._masks32 = self.masks.view(np.uint32).reshape(n, 2, S, S)
        self.scalars = np.zeros((n, 2, 5), np.int32)
        self.rewards = np.zeros((n, 2), np.float32)
        self.terminated = np.zeros(n, bool)
        self.truncated = np.zeros(n, bool)
        self.status = np.zeros((n, 2), np.uint8)
        self.map_id = np.zeros(n, np.int64)
        self.episode_length = np.zeros(n, np.int32)
        self.episode_winner = np.full(n, -1, np.int8)
        self._scratch = np.zeros((n, S, S), np.uint8)
        self._totals = np.zeros((n, 2, 3), np.int64)
        self._phi = np.zeros((n, 2), np.float64)
        self._rng = np.frombuffer(
            rng_seed.generate_state(n, np.uint64).tobytes(), dtype=np.uint64
        ).copy()
        self._rng[self._rng == 0] = 1
        self._step = K.step_boards_parallel if parallel else K.step_boards_serial

    # -- lifecycle -------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start a new game on every board; returns (obs, scalars, masks)."""
        if seed is not None:
            st = np.random.SeedSequence(seed).generate_state(self.num_boards, np.uint64)
            self._rng[:] = st
            self._rng[self._rng == 0] = 1
        K.reset_all(self.state, self._gen_params, *self._pool_arrays(), self.map_id, self._rng,
                    self.obs, self._masks32, self.scalars, self._totals, self._scratch, self._phi)
        self.rewards[:] = 0
        self.terminated[:] = False
        self.truncated[:] = False
        self.status[:] = K.MOVE_SKIPPED
        return self.obs, self.scalars, self.masks

    def load(self, board: int, game_map: MapArrays | str) -> None:
        """Start a new game on ``board`` with the given map (not from the pool)."""
        if isinstance(game_map, str):
            game_map = parse_map(game_map, self.pad_to)
        if game_map.pad_to != self.pad_to:
            raise ValueError(f"map is padded to {game_map.pad_to}, engine to {self.pad_to}")
        if not 0 <= board < self.num_boards:
            raise IndexError(f"board {board} out of range 0..{self.num_boards - 1}")
        s = self.state
        K.load_board(board, s.terrain, s.owner, s.army, s.dims, s.gens, s.time, s.winner,
                     game_map.terrain, game_map.army, np.asarray(game_map.dims, np.int32),
                     np.asarray(game_map.generals, np.int32))
        s.pending[board] = 0
        self.map_id[board] = -1
        K.first_observation(board, s, self.obs, self._masks32, self.scalars, self._totals,
                            self._scratch, self._phi)
        self.rewards[board] = 0
        self.terminated[board] = False
        self.truncated[board] = False

    def refresh_pool(self, count: int | None = None) -> None:
        """Redraw ``count`` (default all) pool maps from the generator, oldest first."""
        if self.generator is None:
            raise RuntimeError("this engine's pool came from fixed layouts; nothing to redraw")
        count = len(self.pool) if count is None else int(count)
        start = getattr(self, "_refresh_at", 0)
        for k in range(count):
            i = (start + k) % len(self.pool)
            m = self.generator.generate_arrays(self.pad_to)
            self.pool.terrain[i], self.pool.army[i] = m.terrain, m.army
            self.pool.dims[i], self.pool.gens[i] = m.dims, m.generals
        self._refresh_at = (start + count) % len(self.pool)

    def _pool_arrays(self):
        p = self.pool
        return p.terrain, p.army, p.dims, p.gens

    # -- stepping --------------------------------------------------------------------------
    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        """Return ``actions`` as C-contiguous int32 [N, 2, 5] or raise a ValueError naming the
        malformed part (shape, dtype, or the first out-of-range entry)."""
        a = actions
        if not isinstance(a, np.ndarray):
            try:
                a = np.asarray(a)
            except ValueError as exc:  # ragged nested lists
                raise ValueError(f"actions must be an int array [N, 2, 5]: {exc}") from None
        shape = (self.num_boards, 2, 5)
        if a.shape != shape:
            raise ValueError(f"actions must have shape {shape} (board, player, "
                             f"[pass, row, col, direction, split]), got {a.shape}")
        if a.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers, got dtype {a.dtype}")
        if a.dtype != np.int32 or not a.flags.c_contiguous:
            a = np.ascontiguousarray(a, dtype=np.int64).clip(-(2**31), 2**31 - 1)
            a = a.astype(np.int32)
        bad = K.validate_actions(a, self.pad_to)
        if bad >= 0:
            b, rest = divmod(bad, 10)
            p, f = divmod(rest, 5)
            names = ("pass", "row", "col", "direction", "split")
            hi = (1, self.pad_to - 1, self.pad_to - 1, 3, 1)[f]
            raise ValueError(
                f"action of board {b}, player {p}: {names[f]}={int(a[b, p, f])} is out of "
                f"range 0..{hi} (action = [pass, row, col, direction, split])"
            )
        return a

    def step(self, actions: np.ndarray, check: bool = True):
        """One tick on every board. ``actions`` int [N, 2, 5] = [pass, row, col, dir, split]
        (direction 0 up, 1 down, 2 left, 3 right; split 1 moves half, floor).

        Returns (obs, scalars, masks, rewards, terminated, truncated): the engine's buffers.
        """
        a = self.check_actions(actions) if check else actions
        self._step(self.state, a, self._rule, 0 if self.truncation is None else self.truncation,
                   self._reward_kind, self.autoreset == "same_step", self._gen_params,
                   *self._pool_arrays(),
                   self.map_id, self._rng, self.obs, self._masks32, self.scalars, self.rewards,
                   self.terminated, self.truncated, self.status, self._scratch, self._totals,
                   self._phi, self.episode_length, self.episode_winner)
        return self.obs, self.scalars, self.masks, self.rewards, self.terminated, self.truncated

    # -- views -----------------------------------------------------------------------------
    @property
    def invalid_count(self) -> np.ndarray:
        """int32 [N, 2]: invalid (non-pass, not executed) moves so far this game."""
        return self.state.invalid_count

    def board_map(self, board: int) -> MapArrays:
        """The starting map board ``board`` is playing (copies)."""
        s = self.state
        return MapArrays(s.terrain[board].copy(), s.start_army[board].copy(),
                         (int(s.dims[board, 0]), int(s.dims[board, 1])), s.gens[board].copy())

    def board_layout(self, board: int) -> str:
        """:meth:`board_map` as a character layout (what replays store)."""
        m = self.board_map(board)
        return format_map(m.terrain, m.army, m.dims, m.generals)

    def planes(self, out: np.ndarray | None = None) -> np.ndarray:
        """float32 [N, 2, 15, S, S]: generals-bots' channel planes of the current observations."""
        from .encoding import expand_planes

        return expand_planes(self.obs, self.scalars, out, parallel=self.parallel)
