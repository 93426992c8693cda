"""The report's figures as PNG bytes (matplotlib, no display needed)."""
from __future__ import annotations

import io

import numpy as np


def _figure(width: float = 8, height: float = 3):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt, plt.figure(figsize=(width, height), dpi=100)


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def ane_share_chart(stages: dict) -> bytes:
    """Stacked bars per stage: eligible, unknown, and the rest of the estimated FLOPs;
    a diamond at the predicted placement's ANE share (verify/placement.py)."""
    plt, fig = _figure(8, 3.2)
    ax = fig.add_subplot()
    names = list(stages)
    eligible = np.array([stages[n]["flop_share"] for n in names]) * 100
    unknown = np.array([stages[n]["unknown_flop_share"] for n in names]) * 100
    ax.barh(names, eligible, color="#2a9d8f", label="ANE-eligible")
    ax.barh(names, unknown, left=eligible, color="#e9c46a", label="unknown")
    ax.barh(names, 100 - eligible - unknown, left=eligible + unknown, color="#e76f51", label="not eligible")
    placed = np.array([stages[n].get("placed_flop_share", 0.0) for n in names]) * 100
    ax.plot(placed, names, "kD", markersize=6, label="predicted on the ANE")
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of estimated FLOPs (static analyzer: supported, and predicted placement)")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=4, fontsize=8, frameon=False)
    return _png(plt, fig)


def waveform_chart(reference: np.ndarray, chain: np.ndarray, sample_rate: int) -> bytes:
    plt, fig = _figure(8, 3)
    ax = fig.add_subplot()
    t = np.arange(len(reference)) / sample_rate
    ax.plot(t, reference, lw=0.5, color="#264653", label="reference (torch twins)")
    ax.plot(np.arange(len(chain)) / sample_rate, chain, lw=0.5, color="#e76f51", alpha=0.7,
            label="chain (saved artifacts, MIL evaluator)")
    ax.set_xlabel("seconds")
    ax.legend(loc="upper right", fontsize=8)
    return _png(plt, fig)


def spectrogram_chart(reference: np.ndarray, chain: np.ndarray) -> bytes:
    from kokoro_build.verify.audio import log_mel
    plt, fig = _figure(8, 4.5)
    for i, (title, audio) in enumerate((("reference (torch twins)", reference),
                                        ("chain (saved artifacts, MIL evaluator)", chain))):
        ax = fig.add_subplot(2, 1, i + 1)
        ax.imshow(log_mel(audio), origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel bin")
    return _png(plt, fig)
