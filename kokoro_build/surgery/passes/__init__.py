"""Built-in surgery passes, one theme per module. Importing registers them."""
from . import albert, cleanup, constants, lstm, noise, stft, weight_norm  # noqa: F401
