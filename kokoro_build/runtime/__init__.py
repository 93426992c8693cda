"""The chain: text -> phonemes -> duration -> alignment -> prosody -> vocoder -> audio,
run from a built variant's manifest on a named backend."""
from kokoro_build.runtime.chain import Chain, ChainError, Speech

__all__ = ["Chain", "ChainError", "Speech"]
