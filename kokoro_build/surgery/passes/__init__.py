"""Built-in surgery passes, one theme per module. Importing registers them."""
from . import cleanup, constants, stft, weight_norm  # noqa: F401
