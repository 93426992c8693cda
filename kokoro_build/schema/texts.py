"""Built-in texts that are part of what a build computes.

SENSITIVITY_TEXTS: what sensitive palettes are fitted on (tune/sensitivity.py). Not the
tune's trial texts (schema/config.py DEFAULT_TUNE_TEXTS, or `calibration.texts`): a
trial then judges a sensitive palette on inputs it was not fitted to. With the trial
texts doing both, tune's 49 MB choice on the default graph predicted 29 % less error
than the data-free one and measured worse on the report sentence (BENCHMARKS.md,
"Sensitive palettes in tune"). Short plain sentences, in none of the benchmarks' sets.
"""
from __future__ import annotations

SENSITIVITY_TEXTS = ("Please close the window before you leave.", "Seven green apples fell from the tree.",
                     "Where did you put the keys?", "The train arrives at noon on Friday.")
