"""Core ML: trace, convert, compress, calibrate (W8A8), merge buckets into one multifunction package."""
