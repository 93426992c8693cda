"""Built-in surgery passes, one theme per module. Importing registers them."""
from kokoro_build.model.surgery.passes import (activations, albert, cleanup, constants, layout, lstm, noise,  # noqa: F401
               padding, recurrent_scan, stft, weight_norm)
