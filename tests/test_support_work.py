"""tests/support/work.py counts lines with its own trace function and then gives the thread back its own."""

from __future__ import annotations

import sys

from tests.support import work


def test_steps_puts_the_previous_trace_function_back():
    """Coverage measures through a trace function: `steps` used to clear it, so the test command's coverage
    stopped at the first reader test that counted its work (68% measured as 48%)."""

    def tracer(frame, event, arg):
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        assert work.steps(lambda: sum(range(10))) >= 0
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)
