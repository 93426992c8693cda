"""Audio similarity metrics: the verify gates, reports, tests and benchmarks.

- log-mel correlation: Pearson correlation of RMS-normalised log-mel spectrograms;
- PESQ (ITU-T P.862.2, wideband), through the `pesq` package, at 16 kHz;
- MCD: mel-cepstral distortion in dB on time-aligned frames (method in `mcd_db`).

The seed guide's perceptual anchors: PESQ above 4.0, and an MCD increase under
0.5 dB is imperceptible (defaults of `verify.audio` in pipeline.yaml).
"""
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


def mel_power(audio, n_fft: int = 1024, hop: int = 256, normalise: bool = False) -> np.ndarray:
    """Mel power spectrogram [80, frames] (Hann window, centred frames); `normalise`
    divides the signal by its RMS first."""
    import torch
    signal = torch.as_tensor(np.asarray(audio, np.float32)).flatten()
    if normalise:
        signal = signal / signal.pow(2).mean().sqrt().clamp(min=1e-8)
    power = torch.stft(signal, n_fft, hop, window=torch.hann_window(n_fft),
                       return_complex=True).abs().numpy().astype(np.float64) ** 2
    return mel_filterbank(n_fft=n_fft) @ power


def log_mel(audio, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Log mel power spectrogram [80, frames] of RMS-normalised audio (so a level
    difference, e.g. an iSTFT that is 1.5x louder, doesn't count as a difference)."""
    return np.log(mel_power(audio, n_fft, hop, normalise=True) + 1e-5)


def correlation(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def mel_correlation(a, b) -> float:
    """Pearson correlation of two signals' log mel spectrograms (over the shorter length)."""
    length = min(len(np.ravel(a)), len(np.ravel(b)))
    return correlation(log_mel(np.ravel(a)[:length]), log_mel(np.ravel(b)[:length]))


PESQ_RATE = 16000  # wideband PESQ is defined at 16 kHz


def resample(audio, sample_rate: int, target_rate: int, dtype=np.float64) -> np.ndarray:
    """`audio` (any shape, read flat) at `target_rate`, by a polyphase filter."""
    from math import gcd

    from scipy.signal import resample_poly

    common = gcd(target_rate, sample_rate)
    return resample_poly(np.asarray(np.ravel(audio), dtype), target_rate // common,
                         sample_rate // common).astype(dtype, copy=False)


def pesq_wb(reference, degraded, sample_rate: int = 24000) -> float:
    """Wideband PESQ (MOS-LQO, 1.0..4.64) of `degraded` against `reference`, both
    resampled to 16 kHz with a polyphase filter and cut to the shorter length."""
    from pesq import pesq

    length = min(len(np.ravel(reference)), len(np.ravel(degraded)))
    ref, deg = (resample(np.ravel(x)[:length], sample_rate, PESQ_RATE) for x in (reference, degraded))
    return float(pesq(PESQ_RATE, ref, deg, "wb"))


# MCD settings: 5 ms hop and coefficients 1..24 (c0 dropped), the usual sizes of MCD
# figures in TTS papers; frames 40 dB below the reference's loudest count as silence.
MCD_HOP, MCD_COEFFICIENTS, MCD_SILENCE_DB = 120, 24, 40.0


def mel_cepstrum(audio, n_fft: int = 1024, hop: int = MCD_HOP) -> np.ndarray:
    """[frames, 80] mel-cepstra of the natural-log mel amplitude spectrum (80 HTK
    mel bands up to 12 kHz, Hann window, 1024 points), scaled as SPTK's minimum-phase
    mel-cepstrum: log|H| = c0 + sum_d c_d cos(d w), so c0 is the mean log amplitude
    and c_d = (2/N) sum_k log|X_k| cos(pi d (2k + 1) / 2N) (a DCT-II over the N bands).
    The power has a floor 60 dB below the signal's mean band power (relative, so a
    level change moves c0 only)."""
    from scipy.fft import dct

    mel = mel_power(audio, n_fft, hop)
    log_amplitude = 0.5 * np.log(mel + 1e-6 * max(mel.mean(), 1e-20))
    cepstrum = dct(log_amplitude, type=2, axis=0) / mel.shape[0]  # scipy's DCT-II carries a factor 2
    cepstrum[0] /= 2
    return cepstrum.T


def mcd_db(reference, degraded, sample_rate: int = 24000) -> float:
    """Mel-cepstral distortion (dB) between two renderings of the same utterance.

    Method: mel-cepstra as in `mel_cepstrum` (5 ms hop); frames aligned by time, no
    DTW (the chain and its reference have the same durations, so frame t is frame t);
    coefficients 1..24 (c0, the frame energy, is left out, so a pure level change
    scores 0); frames whose mean log amplitude is 40 dB below the reference's loudest
    are silence and skipped; per frame (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2),
    averaged over frames.
    """
    length = min(len(np.ravel(reference)), len(np.ravel(degraded)))
    ref, deg = (mel_cepstrum(np.ravel(x)[:length]) for x in (reference, degraded))
    loud = ref[:, 0] >= ref[:, 0].max() - MCD_SILENCE_DB / 20 * np.log(10)
    diff = ref[loud, 1:MCD_COEFFICIENTS + 1] - deg[loud, 1:MCD_COEFFICIENTS + 1]
    return float(np.mean(10.0 / np.log(10) * np.sqrt(2.0 * np.sum(diff ** 2, axis=1))))


def _cepstral_distance(ref: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """[len(ref), len(deg)] per-frame-pair MCD (dB) over coefficients 1..24."""
    a, b = ref[:, 1:MCD_COEFFICIENTS + 1], deg[:, 1:MCD_COEFFICIENTS + 1]
    squared = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return 10.0 / np.log(10) * np.sqrt(2.0 * np.maximum(squared, 0.0))


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """The monotone path from (0, 0) to the last cell with the least summed cost (steps
    right, down, diagonal). A row at a time: D[i, j] = c[i, j] + min(a_j, D[i, j-1])
    with a_j = min(D[i-1, j], D[i-1, j-1]) unrolls to S_j + min_{k<=j}(a_k - S_{k-1}),
    S the row's prefix sum of c, so each row is two cumulative numpy passes."""
    rows, cols = cost.shape
    total = np.empty_like(cost)
    total[0] = np.cumsum(cost[0])
    for i in range(1, rows):
        above = total[i - 1]
        reach = np.minimum(above, np.concatenate(([np.inf], above[:-1])))
        prefix = np.cumsum(cost[i])
        shifted = np.concatenate(([0.0], prefix[:-1]))
        total[i] = prefix + np.minimum.accumulate(reach - shifted)
    path, i, j = [(rows - 1, cols - 1)], rows - 1, cols - 1
    while i or j:
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((s for s in steps if s[0] >= 0 and s[1] >= 0), key=lambda s: total[s])
        path.append((i, j))
    return path[::-1]


def mcd_dtw_db(reference, degraded, sample_rate: int = 24000) -> float:
    """MCD after dynamic time warping: for two renderings whose timing differs (each
    side with its own durations). Frames as in `mcd_db`; the path minimizes the summed
    distance; averaged over the path's pairs whose reference frame is loud."""
    ref, deg = (mel_cepstrum(np.ravel(x)) for x in (reference, degraded))
    loud = ref[:, 0] >= ref[:, 0].max() - MCD_SILENCE_DB / 20 * np.log(10)
    cost = _cepstral_distance(ref, deg)
    distances = [cost[i, j] for i, j in dtw_path(cost) if loud[i]]
    return float(np.mean(distances))


# F0 by YIN (de Cheveigne and Kawahara 2002): 40 ms frames, 10 ms hop, 60-500 Hz (speech);
# a frame is voiced where the normalized difference dips under 0.15 (the paper's threshold).
F0_FRAME_S, F0_HOP_S, F0_RANGE_HZ, YIN_THRESHOLD = 0.040, 0.010, (60.0, 500.0), 0.15


def f0_track(audio, sample_rate: int = 24000) -> np.ndarray:
    """Per-frame F0 in Hz, 0 where unvoiced (or 40 dB below the loudest frame)."""
    x = np.ravel(audio).astype(np.float64)
    size, hop = int(F0_FRAME_S * sample_rate), int(F0_HOP_S * sample_rate)
    low, high = int(sample_rate / F0_RANGE_HZ[1]), int(sample_rate / F0_RANGE_HZ[0])
    if len(x) < size + high:
        return np.zeros(0)
    starts = np.arange(0, len(x) - size - high, hop)
    frames = np.stack([x[s:s + size + high] for s in starts])
    energy = (frames[:, :size] ** 2).mean(1)
    diff = np.stack([((frames[:, :size] - frames[:, lag:lag + size]) ** 2).sum(1)
                     for lag in range(1, high + 1)], axis=1)  # [frames, lag 1..high]
    cumulative = np.cumsum(diff, axis=1) / np.arange(1, high + 1)
    normalized = diff / np.maximum(cumulative, 1e-12)
    f0 = np.zeros(len(starts))
    for n, row in enumerate(normalized):
        below = np.nonzero(row[low - 1:] < YIN_THRESHOLD)[0]
        if not below.size or energy[n] < energy.max() * 1e-4:
            continue
        lag = below[0] + low - 1  # the first dip, then down to its local minimum
        while lag + 1 < high and row[lag + 1] < row[lag]:
            lag += 1
        if 0 < lag < high - 1:  # parabolic interpolation between lags
            a, b, c = row[lag - 1], row[lag], row[lag + 1]
            offset = 0.5 * (a - c) / max(a - 2 * b + c, 1e-12)
        else:
            offset = 0.0
        f0[n] = sample_rate / (lag + 1 + offset)
    return f0


def f0_error_cents(reference, degraded, sample_rate: int = 24000) -> dict[str, float]:
    """Pitch judged on frames voiced in both renderings (same timing: teacher-forced):
    the mean absolute F0 difference in cents (100 per semitone), and the share of the
    reference's voiced frames the other rendering also voices."""
    ref, deg = f0_track(reference, sample_rate), f0_track(degraded, sample_rate)
    count = min(len(ref), len(deg))
    ref, deg = ref[:count], deg[:count]
    both = (ref > 0) & (deg > 0)
    cents = 1200.0 * np.abs(np.log2(deg[both] / ref[both])) if both.any() else np.zeros(0)
    return {"f0_error_cents": float(cents.mean()) if cents.size else 0.0,
            "voicing_agreement": float(both.sum() / max((ref > 0).sum(), 1))}


def audio_metrics(reference, degraded, sample_rate: int = 24000) -> dict[str, float]:
    """Every metric of `degraded` against `reference` (the fp32 torch chain)."""
    return {"mel_correlation": mel_correlation(reference, degraded),
            "pesq": pesq_wb(reference, degraded, sample_rate),
            "mcd_db": mcd_db(reference, degraded, sample_rate)}


def speech_metrics(reference, free_running, teacher_forced, sample_rate: int = 24000) -> dict:
    """The chain's speech against its reference, two ways: free-running (each side with
    its own durations: the whole-utterance metrics as before, plus MCD after DTW) and
    teacher-forced (the chain on the reference's durations, so timing is equal and what
    is left is sound: PESQ, MCD, log-mel correlation, F0 error)."""
    free = audio_metrics(reference, free_running, sample_rate)
    # the same rendering when no duration changed (report/variant.speak_both): measured once
    forced = free if teacher_forced is free_running else audio_metrics(reference, teacher_forced, sample_rate)
    return {**free,
            "mcd_dtw_db": mcd_dtw_db(reference, free_running, sample_rate),
            "teacher_forced": {**forced, **f0_error_cents(reference, teacher_forced, sample_rate)}}


def duration_changes(reference: list[np.ndarray], chain: list[np.ndarray]) -> dict:
    """Timing judged on its own: each chunk's rounded frames per token from the chain
    against the reference's (the same G2P and chunks on both sides). One token a frame
    longer shifts every later frame, which the whole-utterance metrics punish although
    a listener hears the same speech; this says how much of the timing moved."""
    if len(reference) != len(chain) or any(len(r) != len(c) for r, c in zip(reference, chain)):
        raise ValueError("the two sides were chunked differently: durations are not comparable")
    ref = np.concatenate(reference).astype(np.int64) if reference else np.zeros(0, np.int64)
    got = np.concatenate(chain).astype(np.int64) if chain else np.zeros(0, np.int64)
    change = np.abs(got - ref)
    return {"tokens": int(ref.size), "changed_share": float(np.mean(change > 0)) if ref.size else 0.0,
            "mean_change_frames": float(change.mean()) if ref.size else 0.0,
            "max_change_frames": int(change.max()) if ref.size else 0,
            "reference_frames": int(ref.sum()), "length_change_frames": int(got.sum() - ref.sum())}


def audio_failures(metrics: dict, gates: dict[str, float]) -> list[str]:
    """What misses the `verify.audio` gates (empty: every gate met). The duration gate
    reads `metrics["durations"]` (duration_changes), the teacher-forced gates
    `metrics["teacher_forced"]` (speech_metrics)."""
    forced = metrics.get("teacher_forced") or {}
    values = {**metrics, "duration_changed_share": (metrics.get("durations") or {}).get("changed_share"),
              "teacher_forced_pesq": forced.get("pesq"), "f0_error_cents": forced.get("f0_error_cents")}
    checks = (("mel_correlation", "min_mel_correlation", 1), ("pesq", "min_pesq", 1),
              ("mcd_db", "max_mcd_db", -1), ("duration_changed_share", "max_duration_changed_share", -1),
              ("teacher_forced_pesq", "min_teacher_forced_pesq", 1), ("f0_error_cents", "max_f0_error_cents", -1),
              ("mcd_dtw_db", "max_mcd_dtw_db", -1))
    failures = [f"{name} {values[name]:.3f} {'<' if sign > 0 else '>'} {gates[gate]:g}"
                for name, gate, sign in checks
                if gates.get(gate) is not None and values.get(name) is not None
                and sign * (values[name] - gates[gate]) < 0]
    unmeasured = (metrics.get("durations") or {}).get("error")
    if unmeasured and gates.get("max_duration_changed_share") is not None:
        failures.append(f"durations not comparable: {unmeasured}")
    return failures
