"""Images through the same denoiser, schedulers, scorer, calibration and bundle as audio."""
