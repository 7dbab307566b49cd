#!/usr/bin/env bash
# The GPU suite on the accelerator machine, from the repository root:
#     bash benchmarks/gpu_suite.sh                 # results into $OUT/gpu (or benchmarks/results/gpu)
#     DEADLINE_S=300 bash benchmarks/gpu_suite.sh --steps=vision_scaling,forward_7b
# Needs the wheels of `make gpu-wheels` in gpu_wheels/ (carried along with the tree). Prints a one-screen summary;
# every figure, the device check and each step's log are in the output folder.
set -u
# The machine's interpreter: $PYTHON, else the first of python3 / python that has both jax and torch.
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3 python python3.12; do
        if command -v "$cand" > /dev/null && "$cand" -c \
            'import importlib.util as u, sys; sys.exit(not (u.find_spec("jax") and u.find_spec("torch")))' \
            2> /dev/null; then
            PY="$(command -v "$cand")"
            break
        fi
    done
fi
PY="${PY:-python3}"
OUT_DIR="${OUT:-benchmarks/results}/gpu"
mkdir -p "$OUT_DIR"
echo "interpreter: $PY ($("$PY" -V 2>&1))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/nvidia-smi.csv" 2>&1 || true
"$PY" benchmarks/gpu_suite.py --out_dir="$OUT_DIR" --wheels=gpu_wheels --deadline_s="${DEADLINE_S:-480}" "$@"
