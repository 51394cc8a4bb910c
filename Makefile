# The two set-up commands of the README, and a few helpers.
#
#   make demo    the whole pipeline on the shipped demo videos (small preset)
#   make test    the whole test suite
#
# Both create .venv and install the pinned packages on first use, and install
# Debian's ffmpeg (for ffprobe) when it is missing and apt-get is available.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CORES ?= all

.PHONY: demo test lint bench system-packages clean-results

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

system-packages:
	@if ! command -v ffprobe >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's ffmpeg (ffprobe is needed)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; \
	  else \
	    echo "ffprobe not found: install ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg)" >&2; exit 1; \
	  fi; \
	fi

demo: $(INSTALLED) system-packages
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	@echo
	@echo "Demo finished. Results are under $(CURDIR)/results/:"
	@$(BIN)/python -m edn results

test: $(INSTALLED) system-packages
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/snakemake --lint

bench: $(INSTALLED) system-packages
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run.py

clean-results:
	rm -rf results/* .snakemake
