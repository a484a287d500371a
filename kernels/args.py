"""Argument checks shared by the packages' constructors: a wrong type or value is refused
with an error that names the argument, instead of ``int()``'s nameless message or a silent
truncation (``int(2.5) == 2``)."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["whole", "flag"]


def whole(name: str, value, minimum: int | None = None) -> int:
    """``value`` as an int if it is a whole number (an int, a NumPy integer or an integral
    float such as ``1e6``) of at least ``minimum``; otherwise TypeError (None, text, bool,
    2.5) or ValueError (too small), naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not (
        isinstance(value, numbers.Integral)
        or (isinstance(value, (float, np.floating)) and float(value).is_integer())
    ):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def flag(name: str, value) -> bool:
    """``value`` if it is a bool (or NumPy bool); TypeError naming ``name`` otherwise (a
    string such as ``"no"`` is truthy and would silently mean True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)
