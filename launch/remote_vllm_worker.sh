#!/usr/bin/env bash
# The vLLM rollout worker on a GPU machine for a trainer elsewhere (a TPU pod, other nodes): binds a routable
# address, which requires CURVE keys. Creates them on first use in KEYS_DIR and prints what the trainer needs.
#   launch/remote_vllm_worker.sh 0.0.0.0 5558 /models/Qwen2.5-VL-3B-Instruct [worker flags ...]
#   launch/remote_vllm_worker.sh --dry-run 0.0.0.0 5558 /models/Qwen2.5-VL-3B-Instruct   # print, start nothing
# The model directory is the one the trainer starts from (same architecture; the trainer pushes its weights after
# every update). vLLM pins its own torch and transformers: VLLM_PYTHON (default .venv-vllm/bin/python) is the
# python of that environment. GPUS sets CUDA_VISIBLE_DEVICES (default: unchanged). KEYS_DIR defaults to
# ~/.syngrpo/curve. Works once the vLLM rollout engine lands (its own issue).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
VLLM_PYTHON=${VLLM_PYTHON:-.venv-vllm/bin/python}
# Entry point and flag names of the worker and of the trainer's vLLM engine (one place; adjust if they change).
VLLM_WORKER=(-m syngrpo_jax.rollout.vllm_worker)
VLLM_MODEL=--model VLLM_BIND=--bind_address VLLM_PORT_FLAG=--port VLLM_SECRET=--curve_secret_key_file
TRAINER_VLLM=--config.rollout.engine=vllm TRAINER_VLLM_ADDRESS=--config.rollout.vllm.address
TRAINER_VLLM_KEY=--config.rollout.vllm.server_public_key

show() { local label=$1; shift; printf '%s:' "${label}"; printf ' %q' "$@"; printf '\n'; }
dry_run=0
if [[ ${1:-} == --dry-run ]]; then dry_run=1; shift; fi
usage="usage: launch/remote_vllm_worker.sh [--dry-run] BIND_ADDRESS PORT MODEL_DIR [worker flags]"
[[ $# -ge 3 ]] || { echo "${usage}" >&2; exit 2; }
host=$1; port=$2; model=$3; shift 3
[[ ${port} =~ ^[1-9][0-9]*$ ]] || { echo "remote_vllm_worker.sh: PORT=${port} must be a positive integer" >&2; exit 2; }
keys=${KEYS_DIR:-$HOME/.syngrpo/curve}
keygen=("${PYTHON}" -m syngrpo_jax.protocol.curve_keys --out_dir="${keys}" --name=vllm)
env=()
[[ -n ${GPUS:-} ]] && env=(CUDA_VISIBLE_DEVICES="${GPUS}")
worker=(env "${env[@]}" "${VLLM_PYTHON}" "${VLLM_WORKER[@]}" "${VLLM_MODEL}=${model}" "${VLLM_BIND}=${host}"
        "${VLLM_PORT_FLAG}=${port}" "${VLLM_SECRET}=${keys}/vllm.key_secret" "$@")
if (( dry_run )); then
  show "keys" "${keygen[@]}"
  show "vllm worker" "${worker[@]}"
  exit 0
fi
[[ -f ${keys}/vllm.key_secret ]] || "${keygen[@]}"
echo "trainer settings: ${TRAINER_VLLM} ${TRAINER_VLLM_ADDRESS}=tcp://$(hostname -I | awk '{print $1}'):${port}" \
     "${TRAINER_VLLM_KEY}=<copy of ${keys}/vllm.key>"
exec "${worker[@]}"
