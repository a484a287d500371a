"""gristmill.envs: environments (import the module you need; each pulls in its simulator).

- :mod:`gristmill.envs.atari` -- every ALE ROM as ``<Game>-v5`` with EnvPool's Atari
  semantics and preprocessing, driving ``ale_py.ALEInterface`` directly.
- :mod:`gristmill.envs.mujoco` -- Gymnasium's 11 MuJoCo tasks, v5 semantics, stepping
  ``MjData`` directly (bit-identical to ``gymnasium.make("<Task>-v5")``).
- :mod:`gristmill.envs.doom` -- VizDoom scenarios.
- :mod:`gristmill.envs.generals` -- the Generals.io engine and env.

Envs expose the Gymnasium API; gristmill's own also offer an allocation-free fast path
(``reset_into(obs_out, seed)`` / ``step_into(action, obs_out)`` / ``info_spec`` +
``info_values()``) that :mod:`gristmill.samplers` uses to write into shared memory. Envs
whose step is C (MuJoCo's Ant, HalfCheetah, Hopper, Humanoid, Swimmer, Walker2d) also offer
``native_step()``: the pool's worker loop calls it without Python or the GIL (the ABI is in
:mod:`gristmill.samplers._worker_loop`).
"""

__all__ = ["atari", "doom", "generals", "mujoco"]
