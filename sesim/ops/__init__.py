"""Pure tensor functions (self-similarity maps, InfoNCE), and :func:`check_choice`, the check of a
named option that the networks and losses share."""

from __future__ import annotations

from collections.abc import Collection


def check_choice(what: str, value: object, choices: Collection) -> None:
    """Raise ``ValueError`` naming ``what``, ``value`` and the ``choices`` unless ``value`` is one of them."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {tuple(choices)}")
