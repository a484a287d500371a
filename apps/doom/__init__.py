"""The Doom trainer app (`gristmill-doom`): asynchronous APPO on VizDoom.

See :mod:`.trainer` for the process layout, :mod:`.config` for every option.
"""

__all__: list[str] = []
