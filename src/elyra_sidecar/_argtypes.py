"""Argument types shared by the commands' parsers (kept tiny: `tail` imports it in every step pod)."""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_number"]


def positive_number(text: str) -> float:
    """A finite number > 0 (seconds, intervals): `nan`, `inf` and `-inf` are refused like `0` or `x`.

    float() accepts "nan" and "inf", which compare false (or true) against any bound: a deadline of nan
    or inf never arrives, an interval of inf never elapses. argparse turns the error into one line naming
    the option, and exit 2.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value
