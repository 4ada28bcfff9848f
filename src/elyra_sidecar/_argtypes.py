"""Argument types shared by the commands' parsers (kept tiny: `tail` imports it in every step pod)."""

from __future__ import annotations

import argparse
import math

__all__ = ["MAX_SECONDS", "positive_number"]

#: The largest number of seconds any option or setting takes (a week). Above about 1e9 the clock
#: arithmetic overflows (select() and lock timeouts raise OverflowError), and a deadline that never
#: comes is what `inf` was refused for.
MAX_SECONDS = 7 * 24 * 3600


def positive_number(text: str) -> float:
    """A finite number of seconds > 0 and at most MAX_SECONDS: `nan`, `inf`, `-inf` and `1e308` are
    refused like `0` or `x`.

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
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS} (a week), got {text!r}")
    return value
