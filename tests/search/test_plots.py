"""write_pareto_plots: both files, and the PNG's front line is the front of the feasible trials."""

from __future__ import annotations

import matplotlib
import optuna
import pytest
from matplotlib.axes import Axes

from nas.search import CONSTRAINT_NAME
from nas.search._plots import write_pareto_plots

BUDGET = 10.0


def _study(points: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, lat in points:
        study.add_trial(optuna.trial.create_trial(values=[acc, lat], constraints={CONSTRAINT_NAME: lat - BUDGET}))
    return study


@pytest.fixture
def drawn(monkeypatch) -> dict[str, list]:
    """What the PNG draws: the x and y of every ``Axes.plot`` line and ``Axes.scatter``, by label."""
    matplotlib.use("Agg")
    calls: dict[str, list] = {}
    plot, scatter = Axes.plot, Axes.scatter

    def record(original):
        def wrapper(self, *args, **kwargs):
            calls[kwargs.get("label")] = [list(map(float, a)) for a in args[:2]]
            return original(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(Axes, "plot", record(plot))
    monkeypatch.setattr(Axes, "scatter", record(scatter))
    return calls


def test_png_front_is_the_feasible_front_with_ties_and_dominated_points(tmp_path, drawn):
    points = [  # (accuracy, latency)
        (80.0, 2.0), (80.0, 3.0),  # equally accurate: the faster one
        (85.0, 5.0), (83.0, 5.0), (85.0, 5.0),  # equally fast: the more accurate one, once
        (84.0, 6.0),  # dominated by (85, 5)
        (90.0, 9.5),
        (95.0, 12.0),  # over budget: more accurate than all, but not on the feasible front
    ]
    html, png = write_pareto_plots(_study(points), tmp_path, budget_ms=BUDGET, title="t", metric_label="top-1 (%)",
                                   best_number=6)
    assert html.is_file() and png.is_file() and png.stat().st_size > 0
    assert drawn["Pareto front (feasible)"] == [[2.0, 5.0, 9.5], [80.0, 85.0, 90.0]]  # latency across, accuracy up
    assert drawn["over budget"] == [[12.0], [95.0]]
    assert sorted(zip(*drawn["within budget"])) == sorted((lat, acc) for acc, lat in points if lat <= BUDGET)
    assert drawn["best"] == [[9.5], [90.0]]


def test_png_without_feasible_trials_draws_no_front(tmp_path, drawn):
    write_pareto_plots(_study([(95.0, 12.0), (90.0, 11.0)]), tmp_path, budget_ms=BUDGET, title="t", metric_label="a")
    assert "Pareto front (feasible)" not in drawn and "within budget" not in drawn
    assert sorted(zip(*drawn["over budget"])) == [(11.0, 90.0), (12.0, 95.0)]
