#!/usr/bin/env bash
# One machine, one process: the trainer uses the visible accelerators (or the CPU) and starts the data server.
#   launch/local.sh configs/rec.py:model=qwen2_5_vl_3b runs/rec3b [--config.field=value ...]
#   launch/local.sh --dry-run configs/tiny_cpu.py workdirs/demo      # print the command, start nothing
# With GPUs, keep one for the data server: TRAIN_GPUS=0,1,2,3 SERVER_GPU=4 launch/local.sh ...
# Several JAX processes on one machine: launch/local_multiprocess.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dry_run=0
if [[ ${1:-} == --dry-run ]]; then dry_run=1; shift; fi
[[ $# -ge 2 ]] || { echo "usage: launch/local.sh [--dry-run] CONFIG WORKDIR [--config.field=value ...]" >&2; exit 2; }
config=$1; workdir=$2; shift 2
env=(); extra=()
if [[ -n ${SERVER_GPU:-} ]]; then
  extra+=("--config.synthesis.server_visible_devices=${SERVER_GPU}")
fi
if [[ -n ${TRAIN_GPUS:-} ]]; then
  env+=(CUDA_VISIBLE_DEVICES="${TRAIN_GPUS}")
fi
cmd=(env "${env[@]}" "${PYTHON:-.venv/bin/python}" -m syngrpo_jax.train --config="${config}" --workdir="${workdir}"
     "${extra[@]}" "$@")
if (( dry_run )); then
  printf 'trainer:'; printf ' %q' "${cmd[@]}"; printf '\n'
  exit 0
fi
exec "${cmd[@]}"
