"""`DoomEnv`: one VizDoom game as a Gymnasium env, with Sample Factory's conventions.

A single class instead of Sample Factory's wrapper stack (resolution, resize, time limit,
shaping, measurements, reward scaling, multiplayer stats) so that one step costs one call
into VizDoom plus a resize. Frame skip runs inside VizDoom (``make_action(buttons, skip)``).

Episode ends: ``terminated`` when the game ends by itself (goal reached, player died, or a
multiplayer match ran its time limit), ``truncated`` when a single-player scenario's own tic
timeout or the spec's frame limit (``timeout``, Sample Factory's ``TimeLimitWrapper``) cut it.
VizDoom gives no frame after the end, so the final observation is black (as in Sample Factory).

The reward is ``(game reward + shaping) * reward_scale``. ``info["true_objective"]`` at episode
end is, as in Sample Factory: frags (vs bots), 1.0 for an outright win (self-play), the unshaped
unscaled game reward when the scenario is shaped, else the episode's reward.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from contextlib import contextmanager

import cv2
import gymnasium as gym
import numpy as np
import vizdoom as vzd
from gristmill.envs.doom import shaping as dshaping
from gristmill.envs.doom.spaces import action_to_buttons, button_count
from gristmill.envs.doom.specs import DoomSpec, doom_spec
from gristmill.kernels import procfs
from gymnasium import spaces

__all__ = [
    "DoomEnv",
    "DoomEnvError",
    "game_instance",
    "game_instances",
    "scratch_dir",
    "unlink_game_shm",
]

# Variables VizDoom forgets to reset on new_episode (Sample Factory's workaround).
_BUGGED_VARIABLES = ("DEATHCOUNT", "HITCOUNT", "DAMAGECOUNT")

_cwd_lock = threading.Lock()
_cwd_users = 0
_cwd_saved: str | None = None


class DoomEnvError(RuntimeError):
    """A VizDoom game failed (start, step or connect); the message names the env and player."""


def scratch_dir() -> str:
    """Per-user scratch directory the game processes run in (they write ``_vizdoom*`` there)."""
    path = os.path.join(tempfile.gettempdir(), f"gristmill-vizdoom-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


_SHM_PREFIXES = ("ViZDoomSM", "ViZDoomMQCtr", "ViZDoomMQDoom")


def _game_args(parent: int | None = None) -> dict[int, list[bytes]]:
    """``{pid: argv}`` of live VizDoom game processes (children of ``parent``), from ``/proc``."""
    out = {}
    for pid in procfs.pids():
        args = procfs.cmdline(pid)  # empty for a zombie
        if not args or not args[0].endswith(b"/vizdoom"):
            continue
        st = procfs.stat(pid)
        if st is not None and st.state != "Z" and parent in (None, st.ppid):
            out[pid] = args
    return out


def _instance_id(args: list[bytes]) -> str | None:
    if b"+viz_instance_id" not in args:
        return None
    i = args.index(b"+viz_instance_id")
    return args[i + 1].decode(errors="replace") if i + 1 < len(args) else None


def game_instance(pid: int) -> str | None:
    """The ``+viz_instance_id`` of process ``pid`` if it is a running VizDoom game, else None."""
    args = procfs.cmdline(pid)
    return _instance_id(args) if args and args[0].endswith(b"/vizdoom") else None


def game_instances(parent: int | None = None) -> dict[int, str]:
    """``{pid: instance id}`` of live VizDoom game processes (children of ``parent``).

    VizDoom names its shared memory and message queues after the ``+viz_instance_id`` it
    passes to the game process; reading it from ``/proc`` (Linux) lets gristmill remove them
    when the game dies without cleaning up (a killed game or worker).
    """
    found = {pid: _instance_id(args) for pid, args in _game_args(parent).items()}
    return {pid: iid for pid, iid in found.items() if iid is not None}


def unlink_game_shm(instance_ids, wait: float = 0.0) -> list[str]:
    """Remove VizDoom's /dev/shm entries of games that no longer run; returns what was removed.

    An instance whose game process is still alive after ``wait`` seconds (a closed game may
    take a moment to exit) is left alone.
    """
    instance_ids = set(instance_ids)
    deadline = time.monotonic() + wait
    live = set(game_instances().values())
    while live & instance_ids and time.monotonic() < deadline:
        time.sleep(0.02)
        live = set(game_instances().values())
    removed = []
    for iid in instance_ids:
        if iid in live:
            continue
        for prefix in _SHM_PREFIXES:
            try:
                os.unlink(f"/dev/shm/{prefix}{iid}")
                removed.append(f"{prefix}{iid}")
            except OSError:
                pass
    return removed


@contextmanager
def _game_cwd(path: str):
    """Start game processes inside ``path``: the engine writes ``_vizdoom/`` into its cwd.

    Reference-counted so that several threads can start the games of one multiplayer match
    at once (the host's ``init`` blocks until the others have joined).
    """
    global _cwd_users, _cwd_saved
    with _cwd_lock:
        if _cwd_users == 0:
            _cwd_saved = os.getcwd()
            os.chdir(path)
        _cwd_users += 1
    try:
        yield
    finally:
        with _cwd_lock:
            _cwd_users -= 1
            if _cwd_users == 0 and _cwd_saved is not None:
                os.chdir(_cwd_saved)
                _cwd_saved = None


def _enum(kind, name: str):
    try:
        return getattr(kind, name)
    except AttributeError:
        raise ValueError(f"VizDoom has no {kind.__name__} named {name!r}") from None


class DoomEnv(gym.Env):
    """One VizDoom game (one player) as a Gymnasium env.

    Args:
      env_id: a registered id (see :func:`~gristmill.envs.doom.doom_env_ids`) or a DoomSpec.
      resolution: observation ``(width, height)``, default Sample Factory's 128x72 (the
        160x120 game frame squashed non-uniformly).
      grayscale: one channel instead of RGB.
      channels_first: observations ``[C, H, W]`` (model layout) instead of ``[H, W, C]``.
      frame_skip: game tics per step, run inside VizDoom (Sample Factory: 4; 2 for bots).
      game_resolution: the game's render size, ``"160x120"`` (default) or e.g. ``"256x144"``.
      episode_horizon: step limit overriding the spec's ``timeout`` (which counts frames: it
        ends the episode after ``ceil(timeout / frame_skip)`` steps, as Sample Factory's).
      measurements: add the 23 measurements as a dict observation (default: the spec's).
      player_id, num_players, port, host: multiplayer seat; ``player_id == 0`` hosts a game for
        ``num_players`` on UDP ``port``, others join ``host:port``. ``None``: single player, or
        the host of a bots-only match when the spec has bots.
      num_bots, timelimit: override the spec's bots and match minutes.
      render_mode: ``"rgb_array"`` returns the full game frame from :meth:`render`.
      workdir: scratch directory for the game process (default :func:`scratch_dir`).

    Observation: ``uint8[H, W, C]`` (or ``[C, H, W]``), or ``{"obs": ..., "measurements":
    float32[23]}``. Action: the spec's (Sample Factory's) space.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 35}

    def __init__(
        self,
        env_id: str | DoomSpec = "doom_basic",
        *,
        resolution: tuple[int, int] = (128, 72),
        grayscale: bool = False,
        channels_first: bool = False,
        frame_skip: int = 4,
        game_resolution: str = "160x120",
        episode_horizon: int | None = None,
        measurements: bool | None = None,
        player_id: int | None = None,
        num_players: int | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        num_bots: int | None = None,
        timelimit: float | None = None,
        connect_timeout: float = 10.0,
        render_mode: str | None = None,
        workdir: str | None = None,
        seed: int | None = None,
    ):
        self.spec_doom = env_id if isinstance(env_id, DoomSpec) else doom_spec(env_id)
        spec = self.spec_doom
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        if len(resolution) != 2 or min(resolution) < 1:
            raise ValueError(f"resolution must be (width, height) > 0, got {resolution}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.width, self.height = int(resolution[0]), int(resolution[1])
        self.grayscale = grayscale
        self.channels_first = channels_first
        self.frame_skip = int(frame_skip)
        self.game_resolution = game_resolution
        if episode_horizon is not None:
            self.horizon = int(episode_horizon)
        else:
            self.horizon = -(-spec.timeout // self.frame_skip) if spec.timeout > 0 else spec.timeout
        self.use_measurements = spec.measurements if measurements is None else measurements
        self.render_mode = render_mode
        self.workdir = workdir or scratch_dir()
        self.connect_timeout = connect_timeout
        self.reward_scale = spec.reward_scale

        self.num_bots = spec.num_bots if num_bots is None else num_bots
        self.timelimit = spec.timelimit if timelimit is None else timelimit
        if player_id is None and spec.num_agents > 1:
            raise ValueError(
                f"{spec.name} is a {spec.num_agents}-player match: pass player_id/port, or use "
                "DoomMultiAgentEnv"
            )
        self.multiplayer = player_id is not None or self.num_bots > 0
        self.player_id = 0 if player_id is None else int(player_id)
        self.num_players = int(num_players or (spec.num_agents if player_id is not None else 1))
        self.port = port
        self.host = host
        # Several policy players need lock-step tics: VizDoom's multi-tic make_action would
        # desynchronise them (Sample Factory does the same tic loop).
        self.lockstep = self.multiplayer and self.num_players > 1

        self.action_space = spec.action_space()
        if spec.buttons is not None and button_count(self.action_space) != len(spec.buttons):
            raise ValueError(
                f"{spec.name}: action space {self.action_space} drives "
                f"{button_count(self.action_space)} buttons but the spec lists {len(spec.buttons)}"
            )
        channels = 1 if grayscale else 3
        shape = (
            (channels, self.height, self.width)
            if channels_first
            else (self.height, self.width, channels)
        )
        image = spaces.Box(0, 255, shape, dtype=np.uint8)
        if self.use_measurements:
            self.observation_space = spaces.Dict(
                {
                    "obs": image,
                    "measurements": spaces.Box(
                        dshaping.MEASUREMENTS_LOW, dshaping.MEASUREMENTS_HIGH, dtype=np.float32
                    ),
                }
            )
        else:
            self.observation_space = image

        self.game: vzd.DoomGame | None = None
        self._shaping = dshaping.make_shaping(spec.shaping)
        # the coefficients a population run may set per policy (set_agent_params)
        self._scheme = dshaping.default_scheme(spec.shaping)
        self._var_names: list[str] = []
        self._last_episode_vars: dict[str, float] | None = None
        self._prev_info: dict = {}
        self._black = np.zeros(shape, dtype=np.uint8)
        self._seed = seed
        self._episodes = 0
        self._steps = 0
        self._frames = 0
        self._return = 0.0
        self._raw_return = 0.0
        self._closed = False
        self._port_claim = None  # a hosting player's claim on the port it found

    # ------------------------------------------------------------------ game lifecycle
    def _label(self) -> str:
        seat = f" player {self.player_id}/{self.num_players}" if self.multiplayer else ""
        return f"{self.spec_doom.name}{seat}"

    def _configure(self) -> vzd.DoomGame:
        spec = self.spec_doom
        game = vzd.DoomGame()
        cfg = (
            spec.config
            if os.path.isabs(spec.config)
            else os.path.join(vzd.scenarios_path, spec.config)
        )
        if not os.path.isfile(cfg):
            raise DoomEnvError(f"{spec.name}: scenario config {cfg} not found")
        game.load_config(cfg)
        if spec.doom_map is not None:
            game.set_doom_map(spec.doom_map)
        if spec.buttons is not None:
            game.set_available_buttons([_enum(vzd.Button, b) for b in spec.buttons])
        if spec.variables is not None:
            game.set_available_game_variables([_enum(vzd.GameVariable, v) for v in spec.variables])
        w, h = self.game_resolution.lower().split("x")
        game.set_screen_resolution(_enum(vzd.ScreenResolution, f"RES_{w}X{h}"))
        game.set_screen_format(vzd.ScreenFormat.GRAY8 if self.grayscale else vzd.ScreenFormat.RGB24)
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        game.set_mode(vzd.Mode.PLAYER)
        if self._seed is not None:
            game.set_seed(int(self._seed) % (2**32))
        for name, on in spec.render:
            setter = getattr(game, f"set_render_{name}", None)
            if setter is None:
                raise ValueError(f"{spec.name}: VizDoom has no render option {name!r}")
            setter(bool(on))
        if spec.living_reward is not None:
            game.set_living_reward(float(spec.living_reward))
        if spec.death_penalty is not None:
            game.set_death_penalty(float(spec.death_penalty))
        for arg in spec.extra_args:
            game.add_game_args(arg)
        if self.multiplayer:
            timeout = f"+viz_connect_timeout {max(1, int(self.connect_timeout))}"
            if self.player_id == 0:
                if self.port is None:  # claimed until close (see claim_free_port)
                    from gristmill.envs.doom.multiplayer import claim_free_port  # noqa: PLC0415

                    self.port, self._port_claim = claim_free_port()
                port = self.port
                game.add_game_args(
                    f"-host {self.num_players} -port {port} -deathmatch "
                    f"+timelimit {self.timelimit} +sv_forcerespawn 1 +sv_noautoaim 1 "
                    "+sv_respawnprotect 1 +sv_spawnfarthest 1 +sv_nocrouch 1 +sv_nojump 1 "
                    f"+sv_nofreelook 1 +sv_noexit 1 +viz_respawn_delay {spec.respawn_delay} "
                    f"{timeout}"
                )
                game.add_game_args(f"+name AI{self.player_id}_host +colorset 0")
            else:
                if self.port is None:
                    raise ValueError(f"{self._label()}: a joining player needs the host's port")
                game.add_game_args(f"-join {self.host}:{self.port} {timeout}")
                game.add_game_args(f"+name AI{self.player_id} +colorset {self.player_id % 8}")
            game.set_episode_timeout(int(self.timelimit * 60 * game.get_ticrate()))
        return game

    def init_game(self) -> None:
        """Start the game process (blocks until a multiplayer match is complete)."""
        if self._closed:
            raise DoomEnvError(f"{self._label()}: env is closed")
        if self.game is not None:
            return
        game = self._configure()
        self.game = game
        before = game_instances(os.getpid())
        try:
            with _game_cwd(self.workdir):
                game.init()
        except BaseException as exc:  # SystemExit too: a worker told to stop mid-start
            self.game = None
            # read before closing: a game that has exited no longer shows its instance id
            started = set(game_instances(os.getpid()).values()) - set(before.values())
            try:
                game.close()
            except Exception:  # noqa: BLE001 - the init error is the one to report
                pass
            unlink_game_shm(started, wait=3.0)
            if not isinstance(exc, Exception):
                raise
            raise DoomEnvError(f"{self._label()}: VizDoom failed to start: {exc}") from exc
        # Candidates only: envs in other threads may have started games meanwhile; close()
        # removes an instance's entries only once its process is gone.
        self._instances = sorted(set(game_instances(os.getpid()).values()) - set(before.values()))
        self._var_names = [str(v).split(".")[-1] for v in game.get_available_game_variables()]
        self._after_new_episode()

    def _after_new_episode(self) -> None:
        if self.multiplayer and self.player_id == 0 and self.num_bots > 0:
            self.game.send_game_command("removebots")
            for _ in range(self.num_bots):
                self.game.send_game_command("addbot")

    def close(self) -> None:
        self._closed = True
        claim = getattr(self, "_port_claim", None)
        if claim is not None:
            claim.close()
            self._port_claim = None
        if self.game is not None:
            game, self.game = self.game, None
            try:
                game.close()
            except Exception:  # noqa: BLE001 - closing a dead game must not raise
                pass
            unlink_game_shm(getattr(self, "_instances", ()), wait=3.0)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ observations
    def _image(self, buffer: np.ndarray | None) -> np.ndarray:
        if buffer is None:
            return self._black
        img = buffer
        if img.shape[0] != self.height or img.shape[1] != self.width:
            # Sample Factory's ResizeWrapper: nearest neighbour, aspect ratio not kept.
            img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_NEAREST)
        if img.ndim == 2:
            img = img[:, :, None]
        if self.channels_first:
            img = np.ascontiguousarray(img.transpose(2, 0, 1))
        return img

    def _variables(self, state) -> dict[str, float]:
        values = state.game_variables if state is not None else None
        if values is None:
            return {}
        info = dict(zip(self._var_names, values.tolist()))
        if self._last_episode_vars is not None:
            for name in _BUGGED_VARIABLES:
                if name in info:
                    info[name] -= self._last_episode_vars.get(name, 0.0)
        return info

    def _observation(self, image: np.ndarray, info: dict):
        if not self.use_measurements:
            return image
        return {"obs": image, "measurements": dshaping.measurements(info)}

    # ------------------------------------------------------------------ per-policy shaping
    @property
    def agent_param_names(self) -> tuple[str, ...]:
        """The reward-shaping coefficients :meth:`set_agent_params` takes, in order (see
        :func:`~gristmill.envs.doom.shaping.scheme_param_names`); empty without a scheme."""
        return () if self._scheme is None else dshaping.scheme_param_names(self._scheme)

    def set_agent_params(self, agent: int, values) -> None:
        """Shape this player's rewards with ``values`` (``float[len(agent_param_names)]``)
        from its next step on: the rollout worker's per-agent hook, called with the
        coefficients of the policy that acts for the agent (PBT mutates them per policy)."""
        if agent != 0:
            raise ValueError(f"{self._label()} has one agent (0), not agent {agent}")
        if self._scheme is None:
            raise ValueError(f"{self.spec_doom.name} has no reward-shaping coefficients to set")
        self._shaping.set_scheme(dshaping.scheme_from_vector(self._scheme, values))

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._seed = seed
        if self.game is None:
            self.init_game()
        else:
            if seed is not None:
                self.game.set_seed(int(seed) % (2**32))
            raw = {}
            for name in _BUGGED_VARIABLES:
                if name in self._var_names:
                    raw[name] = float(self.game.get_game_variable(_enum(vzd.GameVariable, name)))
            self._last_episode_vars = raw or None
            try:
                self.game.new_episode()
            except Exception as exc:
                raise DoomEnvError(f"{self._label()}: new_episode failed: {exc}") from exc
            self._after_new_episode()
        if self._shaping is not None:
            self._shaping.reset()
        self._episodes += 1
        self._steps = self._frames = 0
        self._return = self._raw_return = 0.0
        state = self.game.get_state()
        info = self._variables(state)
        self._prev_info = info
        return self._observation(self._image(state.screen_buffer if state else None), info), {}

    def step(self, action):
        buttons = self.action_buttons(action)
        if self.lockstep:
            # One player driven alone; DoomMultiAgentEnv instead runs each tic for all its
            # players together (advance_tic), which a match needs (see its step()).
            reward, finished = 0.0, False
            for tic in range(self.frame_skip):
                r, finished = self.advance_tic(buttons, tic == self.frame_skip - 1)
                reward += r
                if finished:
                    break
        else:
            try:
                reward = self.game.make_action(buttons, self.frame_skip)
                finished = self.game.is_episode_finished()
            except vzd.ViZDoomUnexpectedExitException as exc:
                raise DoomEnvError(f"{self._label()}: the game process exited: {exc}") from exc
            except Exception as exc:
                raise DoomEnvError(f"{self._label()}: step failed: {exc}") from exc
        return self.complete_step(reward, finished)

    def action_buttons(self, action) -> list:
        """The VizDoom button vector of ``action`` (checked against the action space)."""
        if self.game is None:
            raise DoomEnvError(f"{self._label()}: step() before reset()")
        return action_to_buttons(self.action_space, action)

    def advance_tic(self, buttons, update_state: bool) -> tuple[float, bool]:
        """Play one game tic with ``buttons`` held: ``(reward, episode finished)``."""
        game = self.game
        try:
            game.set_action(buttons)
            game.advance_action(1, update_state)
            return game.get_last_reward(), game.is_episode_finished()
        except vzd.ViZDoomUnexpectedExitException as exc:
            raise DoomEnvError(f"{self._label()}: the game process exited: {exc}") from exc
        except Exception as exc:
            raise DoomEnvError(f"{self._label()}: step failed: {exc}") from exc

    def complete_step(self, reward: float, finished: bool):
        """The Gymnasium step tuple after this step's tics summed to ``reward``."""
        game = self.game
        try:
            state = None if finished else game.get_state()
        except vzd.ViZDoomUnexpectedExitException as exc:
            raise DoomEnvError(f"{self._label()}: the game process exited: {exc}") from exc
        except Exception as exc:
            raise DoomEnvError(f"{self._label()}: step failed: {exc}") from exc

        self._steps += 1
        self._frames += self.frame_skip
        if finished:
            # VizDoom gives no state after the end: report the last variables seen.
            info = dict(self._prev_info)
            obs_image = self._black
        else:
            info = self._variables(state)
            obs_image = self._image(state.screen_buffer)
            self._prev_info = info
        if "HEALTH" in info and self.use_measurements:
            info["HEALTH"] = max(0.0, info["HEALTH"])

        truncated = False
        terminated = finished
        if finished and not self.multiplayer and game.is_episode_timeout_reached():
            if not game.is_player_dead():
                terminated, truncated = False, True
        if not finished and self.horizon > 0 and self._steps >= self.horizon:
            truncated = True

        done = terminated or truncated
        shaped = 0.0
        if self._shaping is not None:
            shaped = self._shaping(info, done)
        self._raw_return += reward
        reward = (reward + shaped) * self.reward_scale
        self._return += reward
        info["num_frames"] = self.frame_skip
        if done:
            spec = self.spec_doom
            if spec.objective == "frags":
                objective = dshaping.objective_frags(info)
            elif spec.objective == "win":
                objective = dshaping.objective_win(info)
            elif self._shaping is not None:
                objective = self._raw_return
            else:
                objective = self._return
            info["true_objective"] = objective
            info["episode"] = {"r": self._return, "l": self._steps, "frames": self._frames}
        return self._observation(obs_image, info), float(reward), terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array" or self.game is None:
            return None
        state = self.game.get_state()
        if state is None or state.screen_buffer is None:
            return None
        img = state.screen_buffer
        return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img.copy()
