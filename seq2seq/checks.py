"""Range checks of config fields, shared by the config sections and the models' own configs:
each raises UserError naming the field as a user writes it (section.key)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from seq2seq.errors import UserError

DROPOUT_LEVELS = 2**16  # seq2seq.dropout's mask draws one 16-bit uniform per element


def build(cls: type, raw: object, where: str):
    """A config section of class `cls` from a mapping: every key known, every value of its field's type."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise UserError(f"{where}: unknown key {key!r}")
    values = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    return cls(**values)


def _coerce(hint: object, value: object, where: str) -> object:
    """Check `value` against a field's type; ints and numeric strings are accepted for floats,
    nothing else converts."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise UserError(f"{where} must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, (str, float)):  # PyYAML reads "3e-4" (no dot) as a string
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isfinite(number):
                raise UserError(f"{where} must be a finite number, got {value!r}")
            return number
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise UserError(f"{where} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def positive(section: object, *names: str) -> None:
    for name in names:
        if getattr(section, name) <= 0:
            raise UserError(f"{_where(section, name)} must be positive, got {getattr(section, name)}")


def non_negative(section: object, *names: str) -> None:
    for name in names:
        if getattr(section, name) < 0:
            raise UserError(f"{_where(section, name)} must be >= 0, got {getattr(section, name)}")


def at_most(section: object, name: str, bound: int, why: str) -> None:
    value = getattr(section, name)
    if value > bound:
        raise UserError(f"{_where(section, name)} must be at most {bound} ({why}), got {value}")


def one_of(section: object, name: str, choices: tuple[str, ...]) -> None:
    if getattr(section, name) not in choices:
        raise UserError(f"{_where(section, name)} must be one of {', '.join(choices)}, "
                        f"got {getattr(section, name)!r}")


def probability(section: object, name: str) -> None:
    """A rate in [0, 1): label smoothing."""
    value = getattr(section, name)
    if not 0.0 <= value < 1.0:
        raise UserError(f"{_where(section, name)} must be in [0, 1), got {value}")


def dropout_rate(section: object, name: str) -> None:
    """0, or a rate the 16-bit mask of seq2seq.dropout draws: p * 2^16 rounds to a whole number of
    the 2^16 values, at least one and short of all of them."""
    value = getattr(section, name)
    if value != 0.0 and not 1 / DROPOUT_LEVELS <= value <= 1 - 1 / DROPOUT_LEVELS:
        raise UserError(f"{_where(section, name)} must be 0 or in [2^-16, 1 - 2^-16] (dropout draws 16-bit "
                        f"uniforms), got {value}")


def _where(section: object, name: str) -> str:
    """section.key: the section a config class declares (SECTION), else its name less "Config"."""
    return f"{getattr(section, 'SECTION', type(section).__name__.removesuffix('Config').lower())}.{name}"
