"""The sweep plot on matplotlib's Qt canvas draws exactly the sweep it is given, with labelled axes and units."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dermviewer.qt.sweep_plot import EMPTY_TITLE, LABELS, PARTIAL_REDRAW_S, SweepPlot
from dermviewer.state.sweep import SWEEP_CORRUPTIONS, SweepResult, run_sweep
from engine.imageio import load_image


def test_plot_draws_every_corruption_of_a_real_sweep_and_clears(qtbot, predictor, photo: Path) -> None:
    steps = list(run_sweep(predictor, load_image(photo)))
    done, total, result = steps[-1]
    assert done == total == len(steps)
    plot = SweepPlot()
    qtbot.addWidget(plot)
    plot.resize(420, 300)
    plot.show_result(result)
    for name in SWEEP_CORRUPTIONS:
        levels, probs = result.series(name)
        assert levels == [0, 1, 2, 3, 4, 5]
        line = plot.lines[name]
        assert list(line.get_xdata()) == levels
        np.testing.assert_allclose(line.get_ydata(), probs)
        assert line.get_label() == LABELS[name]
    assert [t.get_text() for t in plot.ax.get_legend().get_texts()] == [LABELS[n] for n in SWEEP_CORRUPTIONS]
    assert "severity level" in plot.ax.get_xlabel()
    assert "probability" in plot.ax.get_ylabel()
    assert plot.ax.yaxis.get_major_formatter()(0.5) == "50%"
    assert result.target_name in plot.ax.get_title()
    plot.draw()
    img = plot.grab().toImage()
    assert img.width() > 300 and img.height() > 200

    plot.show_result(None)
    assert plot.result is None
    assert all(len(line.get_xdata()) == 0 for line in plot.lines.values())
    assert plot.ax.get_title() == EMPTY_TITLE


def test_a_burst_of_partial_results_is_drawn_a_few_times_and_the_last_at_once(qtbot, predictor, photo: Path) -> None:
    """Issue 16's stall figure: each of a sweep's 25 partial results redrew the canvas on the UI thread. Now
    partial results arriving faster than PARTIAL_REDRAW_S share one redraw; the complete one is drawn at once."""
    *_, (_, _, full) = run_sweep(predictor, load_image(photo))
    partials = []
    for name_i in range(len(SWEEP_CORRUPTIONS)):  # the sweep's order: one corruption's levels after another
        for level in range(1, 6):
            curves = {n: full.curves[n][: (6 if i < name_i else level + 1 if i == name_i else 1)]
                      for i, n in enumerate(SWEEP_CORRUPTIONS)}
            partials.append(SweepResult(full.target_code, full.target_name, curves))
    assert [p.complete for p in partials] == [False] * 24 + [True]
    plot = SweepPlot()
    qtbot.addWidget(plot)
    plot.resize(420, 300)
    plot.show()
    qtbot.waitUntil(lambda: plot.draws >= 1)  # the first paint
    start, t0 = plot.draws, time.monotonic()
    for p in partials[:-1]:
        plot.show_result(p)
        qtbot.wait(5)  # 24 results, each with the event loop turning
    allowed = 1 + (time.monotonic() - t0) / PARTIAL_REDRAW_S  # at most one redraw per interval (24 unthrottled)
    assert plot.draws - start <= allowed
    qtbot.waitUntil(lambda: plot.draws - start >= 1, timeout=int(PARTIAL_REDRAW_S * 1000) + 500)  # not lost
    before_last = plot.draws
    plot.show_result(partials[-1])
    qtbot.waitUntil(lambda: plot.draws > before_last, timeout=200)
    assert list(plot.lines[SWEEP_CORRUPTIONS[-1]].get_xdata()) == [0, 1, 2, 3, 4, 5]
