"""The sweep plot on matplotlib's Qt canvas draws exactly the sweep it is given, with labelled axes and units."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermviewer.qt.sweep_plot import EMPTY_TITLE, LABELS, SweepPlot
from dermviewer.state.sweep import SWEEP_CORRUPTIONS, run_sweep
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
