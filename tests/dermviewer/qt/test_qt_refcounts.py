"""The Qt binding keeps Python's reference counts: PySide6 6.12.0 dropped one reference to ``None`` per call of a
Qt method returning nothing (and one to ``True`` per signal emitted), so a long session aborted the process with
"none_dealloc: deallocating None" after some 70,000 calls. The pin in requirements/constraints.txt avoids it;
this test fails on a binding that has the bug."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel


class _Emitter(QObject):
    fired = Signal(int)


def test_void_qt_calls_and_signals_keep_the_refcounts_of_none_and_true(qapp) -> None:
    label = _Emitter(), QLabel()
    emitter, widget = label
    got: list[int] = []
    emitter.fired.connect(got.append)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for i in range(2000):
        widget.setText(str(i % 7))
        widget.update()
        emitter.fired.emit(i)
    lost_none = none_before - sys.getrefcount(None)
    lost_true = true_before - sys.getrefcount(True)
    assert len(got) == 2000
    assert lost_none < 100, f"{lost_none} references to None lost in 4,000 void Qt calls"
    assert lost_true < 100, f"{lost_true} references to True lost in 2,000 signal emissions"
