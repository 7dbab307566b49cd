#!/usr/bin/env bash
# The data server on a GPU machine for a trainer elsewhere (a TPU VM or pod, another node): binds a routable
# address, which requires CURVE keys. Creates them on first use in KEYS_DIR and prints what the trainer needs.
#   launch/remote_data_server.sh 0.0.0.0 5557 --config.model.base_dir=/models/sdxl-inpaint [--config.field=value]
#   launch/remote_data_server.sh --dry-run 0.0.0.0 5557          # print the commands, start nothing
# SERVER_CONFIG picks the configs/synth.py setting (default sdxl); GPUS sets CUDA_VISIBLE_DEVICES (default:
# unchanged); KEYS_DIR defaults to ~/.syngrpo/curve.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
# Flag names of the server and of the trainer's synthesis client (one place; adjust if they change).
SERVER_BIND=--config.bind_address SERVER_PORT_FLAG=--config.port
SERVER_SECRET=--config.curve.server_secret_key_file
TRAINER_SERVER_ADDRESS=--config.synthesis.address TRAINER_SERVER_KEY=--config.synthesis.server_public_key

show() { local label=$1; shift; printf '%s:' "${label}"; printf ' %q' "$@"; printf '\n'; }
dry_run=0
if [[ ${1:-} == --dry-run ]]; then dry_run=1; shift; fi
[[ $# -ge 2 ]] || { echo "usage: launch/remote_data_server.sh [--dry-run] BIND_ADDRESS PORT [flags]" >&2; exit 2; }
host=$1; port=$2; shift 2
[[ ${port} =~ ^[1-9][0-9]*$ ]] || { echo "remote_data_server.sh: PORT=${port} must be a positive integer" >&2; exit 2; }
keys=${KEYS_DIR:-$HOME/.syngrpo/curve}
keygen=("${PYTHON}" -m syngrpo_jax.protocol.curve_keys --out_dir="${keys}" --name=server)
env=()
[[ -n ${GPUS:-} ]] && env=(CUDA_VISIBLE_DEVICES="${GPUS}")
server=(env "${env[@]}" "${PYTHON}" -m synth_torch.server --config="configs/synth.py:${SERVER_CONFIG:-sdxl}"
        "${SERVER_BIND}=${host}" "${SERVER_PORT_FLAG}=${port}" "${SERVER_SECRET}=${keys}/server.key_secret" "$@")
if (( dry_run )); then
  show "keys" "${keygen[@]}"
  show "data server" "${server[@]}"
  exit 0
fi
[[ -f ${keys}/server.key_secret ]] || "${keygen[@]}"
echo "trainer settings: ${TRAINER_SERVER_ADDRESS}=tcp://$(hostname -I | awk '{print $1}'):${port}" \
     "${TRAINER_SERVER_KEY}=<copy of ${keys}/server.key>"
exec "${server[@]}"
