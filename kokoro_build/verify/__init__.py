"""Verification without a Mac: run saved .mlpackage files on Linux (MIL evaluator)."""
