"""Training curves as pictures (matplotlib, drawn off-screen). Only `plot_losses` writes a file."""

from __future__ import annotations

import io
import os
from pathlib import Path

__all__ = ["loss_figure_png", "plot_losses"]


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average, so that a noisy GAN loss shows its trend."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def loss_figure_png(records: list[dict]) -> bytes:
    """PNG bytes of two panels: the losses of D and G, and D(x) / D(G(z)), against the iteration;
    a third panel shows the FID when records of --eval-every are among them."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    evals = [r for r in records if "fid" in r]
    records = [r for r in records if "loss_d" in r]
    steps = [r["step"] for r in records]
    window = max(1, len(records) // 50)
    fig, axes = plt.subplots(1, 3 if evals else 2, figsize=(16 if evals else 11, 4), dpi=100)
    ax_loss, ax_d = axes[0], axes[1]
    for key, label in (("loss_d", "D loss"), ("loss_g", "G loss")):
        values = [r[key] for r in records]
        (line,) = ax_loss.plot(steps, values, alpha=0.3, linewidth=1)
        ax_loss.plot(steps, _smooth(values, window), color=line.get_color(), label=label, linewidth=2)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("BCE loss")
    ax_loss.set_title("Losses")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    for key, label in (("d_real", "D(x), real"), ("d_fake", "D(G(z)), fake")):
        ax_d.plot(steps, [r[key] for r in records], label=label)
    ax_d.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax_d.set_ylim(0, 1)
    ax_d.set_xlabel("iteration")
    ax_d.set_title("Discriminator outputs")
    ax_d.legend()
    ax_d.grid(alpha=0.3)
    if evals:
        ax_fid = axes[2]
        fid_steps, values = [r["step"] for r in evals], [r["fid"] for r in evals]
        ax_fid.plot(fid_steps, values, marker="o", markersize=3)
        best = min(range(len(values)), key=values.__getitem__)
        ax_fid.plot(
            [fid_steps[best]], [values[best]], marker="*", markersize=14, color="tab:red", label=f"best {values[best]:.2f} (step {fid_steps[best]})"
        )
        ax_fid.set_xlabel("iteration")
        ax_fid.set_title("FID" + (f" ({evals[-1]['eval']})" if evals[-1].get("eval") else ""))
        ax_fid.legend()
        ax_fid.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def plot_losses(records: list[dict], path: str | os.PathLike) -> Path:
    """Write the loss figure of `records` (metrics.jsonl rows) to `path` atomically."""
    from .fileio import atomic_write_bytes

    return atomic_write_bytes(path, loss_figure_png(records))
