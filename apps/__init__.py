"""gristmill.apps."""

__all__: list[str] = []
