"""Allowed ranges of numeric options, checked where values enter: the command line (argparse
``type=``), presets and ``config.json`` (:func:`sesim.config.convert`).

A :class:`Range` parses and checks one value and can name values it rejects
(:meth:`Range.bad_values`), so the tests walk every numeric flag of every command with bad input.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Range", "count", "non_negative", "positive", "fraction", "Choice"]


@dataclass(frozen=True)
class Range:
    """``kind`` (int or float) values in ``[lo, hi]`` (open ends with ``lo_open``/``hi_open``;
    None: unbounded), and multiples of ``multiple`` (ints)."""

    lo: float | None = None
    hi: float | None = None
    kind: type = int
    lo_open: bool = False
    hi_open: bool = False
    multiple: int = 1

    def describe(self) -> str:
        kind = "an integer" if self.kind is int else "a number"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}")
        text = f"{kind} {' and '.join(parts)}" if parts else kind
        return text + (f", a multiple of {self.multiple}" if self.multiple > 1 else "")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (``"must be an integer >= 1, got 0"``), or None."""
        bad = isinstance(value, bool) or not isinstance(value, (int, float))
        if not bad and self.kind is int and isinstance(value, float):
            bad = not value.is_integer()
        if not bad and isinstance(value, float) and not math.isfinite(value):
            bad = True
        if not bad:
            bad = ((self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo))
                   or (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))
                   or (self.kind is int and value % self.multiple != 0))
        return f"must be {self.describe()}, got {value!r}" if bad else None

    def parse(self, text: Any, name: str) -> Any:
        """A string (or number) -> a checked ``kind`` value; else ``ValueError`` naming ``name`` and the range."""
        if isinstance(text, str):
            try:
                value = self.kind(text.strip())
            except ValueError:
                raise ValueError(f"{name} must be {self.describe()}, got {text!r}") from None
        else:
            value = text
        reason = self.problem(value)
        if reason is not None:
            raise ValueError(f"{name} {reason}")
        return value

    def __call__(self, text: str) -> Any:
        """argparse ``type=``: the flag's error message comes from argparse ("argument --x: ...")."""
        try:
            return self.parse(text, "value")
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value ")) from None

    def bad_values(self) -> list[str]:
        """Values outside the range (and one that is no number), for tests."""
        out = ["abc", "nan"]
        step = 1 if self.kind is int else 0.5
        if self.lo is not None:
            out.append(_fmt(self.lo if self.lo_open else self.lo - step))
        if self.hi is not None:
            out.append(_fmt(self.hi if self.hi_open else self.hi + step))
        if self.kind is int:
            out.append("1.5")
            if self.multiple > 1:
                out.append(str((self.lo or 0) + self.multiple + 1))
        return out


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


@dataclass(frozen=True)
class Choice:
    """argparse ``type=`` for a value that is one of ``words`` or else a :class:`Range` value (e.g.
    ``--tile auto|none|PX``)."""

    words: tuple[str, ...]
    range: Range

    def __call__(self, text: str) -> Any:
        if text.strip().lower() in self.words:
            return text.strip().lower()
        try:
            return self.range.parse(text, "value")
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {' or '.join(self.words)} or {self.range.describe()}, got {text!r}") from None

    def bad_values(self) -> list[str]:
        return [v for v in self.range.bad_values() if v.lower() not in self.words]


def count(lo: int = 1, hi: int | None = None, multiple: int = 1) -> Range:
    """Integers >= ``lo`` (default 1): counts, intervals, sizes."""
    return Range(lo, hi, int, multiple=multiple)


def non_negative(kind: type = int) -> Range:
    return Range(0, None, kind)


def positive(kind: type = float) -> Range:
    return Range(0, None, kind, lo_open=True)


def fraction(lo_open: bool = False, hi_open: bool = False) -> Range:
    """Floats in [0, 1] (ends open as asked): probabilities, shares."""
    return Range(0.0, 1.0, float, lo_open, hi_open)
