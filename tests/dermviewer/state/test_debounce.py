from __future__ import annotations

from dermviewer.state.debounce import Debouncer, LatestOnly


def test_only_the_last_value_is_released_after_quiet_period() -> None:
    d: Debouncer[int] = Debouncer(delay=0.1)
    for i, t in enumerate((0.0, 0.03, 0.06, 0.09)):
        d.push(i, t)
        assert d.pop_due(t) is None
    assert d.time_left(0.1) > 0
    assert d.pop_due(0.15) is None  # 0.06 s since the last input
    assert d.pop_due(0.19) == 3
    assert not d.pending
    assert d.pop_due(1.0) is None


def test_latest_only_marks_older_tickets_stale() -> None:
    t = LatestOnly()
    a = t.next()
    b = t.next()
    assert not t.is_current(a)
    assert t.is_current(b)
    t.invalidate()
    assert not t.is_current(b)
