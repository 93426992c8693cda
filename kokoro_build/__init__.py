"""kokoro-build: Kokoro-82M -> verified Core ML packages, built incrementally with doit."""
__version__ = "0.1.0"
