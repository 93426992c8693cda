"""Built-in surgery passes, one theme per module. Importing registers them."""
from . import activations, albert, cleanup, constants, layout, lstm, noise, padding, stft, weight_norm  # noqa: F401
