"""Training the denoiser on normal recordings."""
