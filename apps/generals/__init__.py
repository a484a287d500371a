"""The Generals app (`gristmill-generals`): bot tournaments, replays, and the league agent.

See :mod:`.cli` for the commands.
"""

__all__: list[str] = []
