"""Model sources: where the Kokoro weights, config and voices come from.

Kept import-light: the heavy modules (torch, onnx) load inside functions.
"""
