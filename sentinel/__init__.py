"""Sentinel: streaming audio anomaly monitoring with a diffusion model of normal sound."""

__version__ = "0.1.0"
