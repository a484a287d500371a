"""gristmill.envs.generals: a Numba-batched Generals.io simulator (generals-bots 2.5.0 rules)."""

from .encoding import NUM_PLANES, PLANE_NAMES, decode, expand_planes
from .engine import GeneralsEngine, MapPool
from .maps import InvalidMapError, MapArrays, MapGenerator, format_map, parse_map

__all__ = [
    "NUM_PLANES",
    "PLANE_NAMES",
    "GeneralsEngine",
    "InvalidMapError",
    "MapArrays",
    "MapGenerator",
    "MapPool",
    "decode",
    "expand_planes",
    "format_map",
    "parse_map",
]
