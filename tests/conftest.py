"""Suite-wide hooks. The fuzz tests' tally (tests/fuzzing.py) is printed in the terminal summary, so the number
of inputs tried shows with or without ``-s``; nothing is printed when no fuzz test ran."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    fuzzing = sys.modules.get("tests.fuzzing")  # imported only by the fuzz tests: no hypothesis import otherwise
    lines = fuzzing.report_lines() if fuzzing is not None else []
    if lines:
        terminalreporter.section("fuzzed loaders")
        for line in lines:
            terminalreporter.write_line(line)
