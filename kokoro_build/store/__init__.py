"""Files on disk: atomic writes and digests, the manifest, the step cache, doit's state, clean children, reproducible packages, releases."""
