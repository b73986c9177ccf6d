# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what it needs.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# torchaudio 2.11 needs a CUDA build of torch; 2.14.1 lies on local disk here and runs on the CPU.
# On a GPU host with its own torch, override: make TORCH_SPEC="torch==2.11.0 torchaudio==2.11.0"
TORCH_SPEC ?= torch==2.14.1 torchaudio==2.11.0
DEMO    ?= demo-out

.PHONY: setup system-deps demo demo-offline demo-assets test lint bench install clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The daemon on the built-in demo source (a recording with a rattle at 8 s and a whine at 20 s,
# replayed in real time) and a subscriber that prints the first two alerts, then both stop.
demo: $(STAMP)
	@$(VENV)/bin/sentinel run & pid=$$!; \
	trap "kill $$pid 2>/dev/null" EXIT INT TERM; \
	echo "sentinel run: pid $$pid; dashboard at http://127.0.0.1:8765/; subscriber waiting for alerts (about 25 s)..."; \
	$(VENV)/bin/sentinel subscribe --topic alert. --count 2 --timeout 90; \
	kill -TERM $$pid; wait $$pid

# The offline path: train on generated audio, calibrate, score a recording, print flagged windows.
demo-offline: $(STAMP)
	$(PY) -m sentinel.demo data $(DEMO)/data
	$(VENV)/bin/sentinel train --config configs/demo.yaml --data $(DEMO)/data/normal --out $(DEMO)/bundle
	$(VENV)/bin/sentinel calibrate $(DEMO)/bundle --normal $(DEMO)/data/normal --device cpu
	$(VENV)/bin/sentinel score $(DEMO)/bundle $(DEMO)/data/recording.wav --only-anomalies --device cpu

# Debian packages for the live-source tests (RTSP server, PulseAudio, PortAudio).
system-deps:
	bash .ci/system-deps.sh

demo-assets: $(STAMP)
	$(PY) -m sentinel.demo assets

lint: $(STAMP)
	$(VENV)/bin/ruff check sentinel tests benchmarks

test: $(STAMP) system-deps lint
	$(PY) -m pytest

# Development figures (see docs/quality.md and docs/performance.md); quality and textures train models: long.
bench: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	$(PY) benchmarks/scorer.py
	$(PY) benchmarks/stream.py
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/textures.py

# As root: venv in $(PREFIX), `sentinel` on PATH, then `sentinel install-service`: the unit and the
# example config (an existing one is kept). The example has no sources: the service refuses to start until you add yours.
PREFIX ?= /opt/sentinel
BINDIR ?= /usr/local/bin
install:
	$(PYTHON) -m venv $(PREFIX)/venv
	$(PREFIX)/venv/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(PREFIX)/venv/bin/python -m pip install --quiet .
	install -D -m 0644 README.md $(PREFIX)/README.md
	install -d $(BINDIR) && ln -sf $(PREFIX)/venv/bin/sentinel $(BINDIR)/sentinel
	$(PREFIX)/venv/bin/sentinel install-service

clean:
	rm -rf $(DEMO) bench-out .pytest_cache
