"""The waterfall chart of a pair's match weight (``concord customers explain --chart``).

One bar per field, starting from the prior: green bars add weight (evidence for the same
customer), red bars remove it; the last bar is the total, labelled with the match probability.
Needs matplotlib (the ``charts`` extra).
"""

from __future__ import annotations

from pathlib import Path

from concord.errors import ConcordError
from concord.identity.scoring import PairScore


def waterfall_png(score: PairScore, path: Path, title: str) -> Path:
    """Write the chart of ``score`` to ``path`` (PNG) and return it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - the charts extra is part of `make install`
        raise ConcordError(
            "explain --chart needs matplotlib: pip install 'concord[charts]'"
        ) from exc
    labels = ["prior"]
    values = [score.prior_weight]
    for f in score.fields:
        labels.append(f"{f.field}\n{f.level}")
        values.append(f.weight + f.tf_adjustment)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(labels) + 2), 5.5))
    running = 0.0
    for n, value in enumerate(values):
        bottom = running if value >= 0 else running + value
        colour = "#9e9e9e" if n == 0 else ("#2e7d32" if value >= 0 else "#c62828")
        ax.bar(n, abs(value) or 0.05, bottom=bottom, color=colour, edgecolor="black", width=0.7)
        ax.text(n, max(running, running + value) + 0.3, f"{value:+.1f}", ha="center", fontsize=8)
        running += value
    total = len(values)
    colour = "#1565c0"
    ax.bar(
        total, abs(running), bottom=min(0.0, running), color=colour, edgecolor="black", width=0.7
    )
    ax.text(
        total,
        max(0.0, running) + 0.3,
        f"{running:+.1f}\np={score.probability:.4f}",
        ha="center",
        fontsize=8,
    )
    labels.append("match weight")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("match weight (log2 of the odds)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
