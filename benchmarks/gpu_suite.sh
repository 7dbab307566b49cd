#!/usr/bin/env bash
# The GPU suite on the accelerator machine, from the repository root:
#     bash benchmarks/gpu_suite.sh                 # results into $OUT/gpu (or benchmarks/results/gpu)
#     DEADLINE_S=300 bash benchmarks/gpu_suite.sh --steps=vision_scaling,forward_7b
# Needs the wheels of `make gpu-wheels` in gpu_wheels/ (carried along with the tree). Prints a one-screen summary;
# every figure, the device check and each step's log are in the output folder.
set -u
PY="${PYTHON:-$(command -v python3 || command -v python)}"
OUT_DIR="${OUT:-benchmarks/results}/gpu"
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/nvidia-smi.csv" 2>&1 || true
"$PY" benchmarks/gpu_suite.py --out_dir="$OUT_DIR" --wheels=gpu_wheels --deadline_s="${DEADLINE_S:-480}" "$@"
