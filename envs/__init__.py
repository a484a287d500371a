"""gristmill.envs."""

__all__: list[str] = []
