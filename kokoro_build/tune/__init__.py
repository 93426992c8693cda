"""`kokoro-build tune`: per-weight compression sensitivity, measured with the MIL
evaluator on the converted packages, allocated to a size budget, written as a recipe."""
