"""PNG plot of simulated runs: demand, ready capacity and live instances over time.

Kept apart from ``vmscale.simulate`` so the simulator core stays pure and never imports matplotlib.
"""

from __future__ import annotations

from pathlib import Path

from vmscale.simulate import Run


def plot_runs(runs: dict[str, Run], path: Path, *, title: str = "") -> Path:
    """One panel per run, sharing the time axis; red shading marks seconds with unserved demand."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(runs), 1)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n + 0.6), sharex=True, squeeze=False)
    for ax, (name, run) in zip(axes[:, 0], runs.items(), strict=False):
        line = run.timeline
        ax.plot(line.t, line.demand, color="black", lw=1.2, label="demand")
        ax.step(line.t, line.ready, where="post", color="tab:green", lw=1.2, label="capacity (ready)")
        ax.step(line.t, line.live, where="post", color="tab:blue", lw=1, ls="--", label="instances (live)")
        short = [u > 1e-9 for u in line.unserved]
        if any(short):
            ax.fill_between(
                line.t,
                0,
                1,
                where=short,
                transform=ax.get_xaxis_transform(),
                color="tab:red",
                alpha=0.15,
                step="post",
                label="unserved",
            )
        ax.set_ylabel("instances")
        ax.set_title(name, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("t (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
