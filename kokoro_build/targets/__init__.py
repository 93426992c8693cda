"""Where artifacts go: Core ML packages and ExecuTorch programs."""
