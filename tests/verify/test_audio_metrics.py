"""Perceptual metrics (verify/audio.py) on a synthetic voiced signal: what each one
says about identical, rescaled, noisy and filtered renderings."""
import numpy as np
import pytest

from kokoro_build.verify.audio import audio_failures, audio_metrics, mcd_db, pesq_wb

RATE = 24000


def voiced(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """A vowel-like signal: 20 harmonics of a gliding 110-190 Hz pitch under two
    formant-like resonances, in syllables separated by pauses."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 150 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    signal = np.zeros_like(t)
    for k in range(1, 21):
        freq = k * 150
        gain = np.exp(-((freq - 700) / 300) ** 2) + 0.5 * np.exp(-((freq - 1800) / 400) ** 2) + 0.02
        signal += gain * np.sin(k * phase)
    syllables = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (0.2 * signal * syllables + noise).astype(np.float32)


def test_identical_audio_scores_perfect():
    x = voiced()
    metrics = audio_metrics(x, x, RATE)
    assert metrics["pesq"] > 4.5  # wideband maximum: 4.64
    assert metrics["mcd_db"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["mel_correlation"] == pytest.approx(1.0)


def test_mcd_ignores_level_and_sees_spectral_change():
    x = voiced()
    assert mcd_db(x, 0.5 * x) < 0.05  # c0 (energy) is left out
    from scipy.signal import butter, sosfilt
    muffled = sosfilt(butter(4, 1500, fs=RATE, output="sos"), x).astype(np.float32)
    assert mcd_db(x, muffled) > 2.0


def test_pesq_falls_with_noise():
    x = voiced()
    rng = np.random.default_rng(1)
    light = x + rng.normal(0, 0.001, x.shape).astype(np.float32)
    heavy = x + rng.normal(0, 0.05, x.shape).astype(np.float32)
    assert pesq_wb(x, light, RATE) > pesq_wb(x, heavy, RATE)
    assert pesq_wb(x, heavy, RATE) < 3.0


def test_gates_name_what_missed():
    metrics = {"pesq": 3.5, "mcd_db": 0.7, "mel_correlation": 0.995}
    failures = audio_failures(metrics, {"min_pesq": 4.0, "max_mcd_db": 0.5, "min_mel_correlation": 0.99})
    assert failures == ["pesq 3.500 < 4", "mcd_db 0.700 > 0.5"]
    assert audio_failures(metrics, {"min_pesq": None, "max_mcd_db": None}) == []


def test_duration_changes_count_tokens_whose_frames_moved():
    from kokoro_build.verify.audio import audio_failures, duration_changes
    reference = [np.array([1, 4, 3, 2]), np.array([5, 1])]
    chain = [np.array([1, 5, 3, 2]), np.array([3, 1])]
    changes = duration_changes(reference, chain)
    assert changes == {"tokens": 6, "changed_share": 2 / 6, "mean_change_frames": 0.5, "max_change_frames": 2,
                       "reference_frames": 16, "length_change_frames": -1}
    assert duration_changes(reference, reference)["changed_share"] == 0.0
    assert audio_failures({"durations": changes}, {"max_duration_changed_share": 0.02}) == \
        ["duration_changed_share 0.333 > 0.02"]
    assert audio_failures({"durations": changes}, {"max_duration_changed_share": None}) == []
    with pytest.raises(ValueError, match="chunked differently"):
        duration_changes(reference, chain[:1])


def steady(pitch_hz: float, seconds: float = 1.0) -> np.ndarray:
    """A vowel at a constant pitch (harmonics under one formant)."""
    t = np.arange(int(seconds * RATE)) / RATE
    return sum(np.exp(-((k * pitch_hz - 700) / 400) ** 2) * np.sin(2 * np.pi * k * pitch_hz * t)
               for k in range(1, 15)).astype(np.float32)


def test_f0_is_found_and_a_semitone_is_a_hundred_cents():
    from kokoro_build.verify.audio import f0_error_cents, f0_track
    track = f0_track(steady(150.0))
    assert len(track) > 50 and np.all(np.abs(track - 150.0) < 1.0), track[:5]
    same = f0_error_cents(steady(150.0), steady(150.0))
    shifted = f0_error_cents(steady(150.0), steady(150.0 * 2 ** (1 / 12)))
    assert same["f0_error_cents"] < 1 and same["voicing_agreement"] == 1.0
    assert 95 < shifted["f0_error_cents"] < 105


def test_a_longer_frame_is_timing_for_dtw_mcd_not_lost_sound():
    """One Kokoro frame (600 samples) held longer mid-utterance shifts everything after
    it: plain MCD, frame t against frame t, calls that distortion; after DTW it is
    (nearly) none, while added noise still is."""
    from kokoro_build.verify.audio import mcd_dtw_db
    x = voiced(2.0)
    middle = len(x) // 2
    longer = np.concatenate([x[:middle], x[middle - 600:middle], x[middle:]])
    noisy = x + np.random.default_rng(1).normal(0, 0.05, x.shape).astype(np.float32)
    assert mcd_db(x, longer) > 1.0  # measured 1.75 dB
    assert mcd_dtw_db(x, longer) < 0.2  # 0.04 dB
    assert mcd_dtw_db(x, noisy) > 2.0  # 3.98 dB


def test_durations_that_could_not_be_compared_fail_a_duration_gate():
    """A chain that halved a chunk the reference spoke whole has no per-token timing to
    compare; with a duration gate set, that is a failure, never a silent pass."""
    metrics = {"durations": {"error": "the two sides were chunked differently (3 chunks against 2)"}}
    assert audio_failures(metrics, {"max_duration_changed_share": 0.02}) == \
        ["durations not comparable: the two sides were chunked differently (3 chunks against 2)"]
    assert audio_failures(metrics, {}) == []
