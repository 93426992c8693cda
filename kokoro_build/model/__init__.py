"""Kokoro as torch modules: model sources, stage kinds, surgery passes."""
