"""Audio similarity metrics shared by tests, reports and `diff`."""
from __future__ import annotations

import numpy as np


def mel_filterbank(sample_rate: int = 24000, n_fft: int = 1024, n_mels: int = 80,
                   fmax: float = 12000.0) -> np.ndarray:
    """[n_mels, n_fft/2 + 1] triangular filters on the HTK mel scale."""
    to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    to_hz = lambda mel: 700.0 * (10.0 ** (mel / 2595.0) - 1.0)  # noqa: E731
    edges = to_hz(np.linspace(0.0, to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))


def log_mel(audio, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Log mel power spectrogram [80, frames] of RMS-normalised audio (so a level
    difference, e.g. an iSTFT that is 1.5x louder, doesn't count as a difference)."""
    import torch
    signal = torch.as_tensor(np.asarray(audio, np.float32)).flatten()
    signal = signal / signal.pow(2).mean().sqrt().clamp(min=1e-8)
    power = torch.stft(signal, n_fft, hop, window=torch.hann_window(n_fft),
                       return_complex=True).abs() ** 2
    return np.log(mel_filterbank(n_fft=n_fft) @ power.numpy().astype(np.float64) + 1e-5)


def correlation(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def mel_correlation(a, b) -> float:
    """Pearson correlation of two signals' log mel spectrograms (over the shorter length)."""
    length = min(len(np.ravel(a)), len(np.ravel(b)))
    return correlation(log_mel(np.ravel(a)[:length]), log_mel(np.ravel(b)[:length]))
