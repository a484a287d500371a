"""`gristmill-atari`: CleanRL's ppo_atari on gristmill's env pool (see :mod:`.cli`)."""

__all__: list[str] = []
