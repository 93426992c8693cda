"""What reports compute and print: audio metrics now; more with verification."""
