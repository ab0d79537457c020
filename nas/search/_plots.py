"""Pareto-front plots: interactive HTML (Optuna's plotly figure) and a PNG drawn with matplotlib."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.pareto import pareto_front
from nas.search._study import constraint_values

__all__ = ["write_pareto_plots"]


def write_pareto_plots(
    study: optuna.Study,
    out_dir: Path,
    *,
    budget_ms: float,
    title: str,
    metric_label: str,
    best_number: int | None = None,
) -> tuple[Path, Path]:
    """Write ``pareto.html`` and ``pareto.png`` into ``out_dir``; return both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    fig = optuna.visualization.plot_pareto_front(study, target_names=[metric_label, "predicted latency (ms)"])
    fig.update_layout(title=title)
    html_path = out_dir / "pareto.html"
    fig.write_html(str(html_path), include_plotlyjs=True)

    # (metric, latency) as in trial.values; the axes show latency across, the metric up
    feasible = [(t.values[0], t.values[1]) for t in trials if constraint_values(t)[0] <= 0]
    infeasible = [(t.values[0], t.values[1]) for t in trials if constraint_values(t)[0] > 0]
    fig2, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if infeasible:
        acc, lat = zip(*infeasible)
        ax.scatter(lat, acc, s=14, c="#bbbbbb", label="over budget")
    if feasible:
        acc, lat = zip(*feasible)
        ax.scatter(lat, acc, s=16, c="#1f77b4", label="within budget")
        acc, lat = zip(*pareto_front(feasible))
        ax.plot(lat, acc, c="#d62728", lw=1.5, marker="o", ms=4, label="Pareto front (feasible)")
    best = next((t for t in trials if t.number == best_number), None)
    if best is not None:
        ax.scatter([best.values[1]], [best.values[0]], s=120, marker="*", c="#ff7f0e", zorder=5, label="best")
    ax.axvline(budget_ms, ls="--", c="k", lw=1, label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(metric_label)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig2.tight_layout()
    png_path = out_dir / "pareto.png"
    fig2.savefig(png_path)
    plt.close(fig2)
    return html_path, png_path
