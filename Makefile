# One command to set up and run the demo (`make demo`), one to set up and run every test (`make test`).
# Everything installs into .venv in the repository root; nothing outside it is touched.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,test
WORKDIR ?= workdirs/demo
PYTEST_ARGS ?=

GPU_WHEELS ?= gpu_wheels

.PHONY: setup test test-fast demo bench clean gpu-wheels

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# The whole suite, slow tests included. pytest exits 5 when no test ran, and make fails on it.
test: setup
	$(PY) -m pytest tests -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(PY) -m syngrpo_jax.train --config=configs/tiny_cpu.py --workdir=$(WORKDIR)

# The cp312 x86-64 wheels the GPU machine lacks (benchmarks/gpu_wheels.py), for the GPU suite to carry; needs PyPI.
gpu-wheels:
	$(PYTHON) benchmarks/gpu_wheels.py download --dir=$(GPU_WHEELS)

clean:
	rm -rf $(VENV) build *.egg-info
