"""What a trial's measured errors cost, in one unit across stages: multiples of a
tolerance, so the allocation can add a duration stage's timing to a vocoder's noise.

- The duration stage's frames per token (trials.DURATION_OUTPUT): the chain rounds them, and a
  token whose rounded count changes moves every later frame. For an error |d| under
  a frame, and a fractional part spread evenly, the chance that the rounding changes
  is |d|: so mean(min(|d|, 1)) is the expected share of tokens whose frames change,
  smooth where counting them on a few sentences is not. Tolerance: 2 % of tokens
  (`verify.audio.max_duration_changed_share`'s suggested value; the fp16 default
  measured 0.0 % on the report sentence, BENCHMARKS.md "Durations judged on their own").
- The prosody stage's pitch (`f0`): the squared error over the twin's power. A
  relative error δ is about 1731·δ cents, so the tolerance 3.3e-5 is 10 cents RMS,
  about twice the frequency difference limen at speech pitches (0.2-0.5 %, Wier,
  Jesteadt and Green 1977, JASA 61:178). Measured: w8 3.3 cents, pal8 3.2.
- Every other output: the squared error over the twin's power. Tolerance: 1e-3 (30 dB
  SNR; the fp16 packages measure 55-70 dB against their twins, the compressed parity
  gate is 20 dB).
A stage's cost is its duration term plus the mean of its other outputs' terms.

Measured (BENCHMARKS.md "Tune"): with one relative-power unit for every output, the
duration stage's LSTMs took 2-bit tables and 9.4 % of the report sentence's tokens
changed length; with the duration term but f0 at 1e-3, prosody's F0 error reached
17.8 cents and the teacher-forced PESQ 3.58.
"""
from __future__ import annotations

TOLERANCE = {"frames": 0.02, "power": 1e-3}
POWER_TOLERANCE_BY_OUTPUT = {"f0": 3.3e-5}


def cost(errors: dict[str, dict[str, float]]) -> float:
    """`errors`: output name -> {"power": .., "frames": .. (durations only)}."""
    frames = sum(e["frames"] / TOLERANCE["frames"] for e in errors.values() if "frames" in e)
    powers = [e["power"] / POWER_TOLERANCE_BY_OUTPUT.get(name, TOLERANCE["power"])
              for name, e in errors.items() if "frames" not in e]
    return frames + (sum(powers) / len(powers) if powers else 0.0)


def added_cost(errors: dict | None, baseline: dict) -> float | None:
    """A setting's cost beyond the uncompressed package's (never below 0: a setting
    that happens to land nearer the twin saves nothing)."""
    return None if errors is None else max(cost(errors) - cost(baseline), 0.0)
