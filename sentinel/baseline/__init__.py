"""Reference detectors that Sentinel is measured against, served by the same bundle and CLI."""
