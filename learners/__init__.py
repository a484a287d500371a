"""gristmill.learners."""

__all__: list[str] = []
