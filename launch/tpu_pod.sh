#!/usr/bin/env bash
# A TPU slice trains, one host or many: every worker runs the trainer (one JAX process per worker; JAX finds the
# others from the TPU metadata). The data server and the vLLM rollout worker run on a GPU VM, reached over TCP with
# CURVE: start them there with launch/remote_data_server.sh and launch/remote_vllm_worker.sh, which print their
# addresses and public key files. This script copies the public keys to every worker, then starts the trainers.
#   launch/tpu_pod.sh my-v4-32 us-central2-b configs/rec.py:model=qwen2_5_vl_7b /mnt/shared/runs/rec7b \
#       tcp://10.0.0.5:5557 keys/server.key [--config.field=value ...]
#   launch/tpu_pod.sh --vllm=tcp://10.0.0.5:5558 --vllm_key=keys/vllm.key my-v4-32 ...   # rollouts on vLLM
#   launch/tpu_pod.sh --dry-run --num_workers=4 my-v4-32 us-central2-b ...          # print, start nothing
# Options (before TPU ZONE): --num_workers=N (default: counted by gcloud), --repo=DIR (the checkout on every
# worker, relative to its home directory: syngrpo), --setup (first `make setup` and jax[tpu] on every worker),
# --vllm=tcp://HOST:PORT with --vllm_key=FILE (switches the trainer to the vLLM engine), --dry-run.
# WORKDIR must be a directory every worker mounts (e.g. Filestore over NFS): checkpoints and metrics go there.
# Stopping: Ctrl-C ends the local ssh sessions; a failed worker ends the others' sessions.
# Works today: single-host slices (one worker, e.g. v4-8 or v5e-8). On multi-host slices every worker starts and
# joins the JAX job, then the trainer refuses more than one process until multi-process training lands (issue 14,
# section 1); --vllm needs the vLLM engine (its own issue).
set -euo pipefail

# Flag names of the trainer's synthesis client and vLLM engine (one place; adjust if they change).
TRAINER=(-m syngrpo_jax.train)
TRAINER_SERVER_ADDRESS=--config.synthesis.address TRAINER_SERVER_KEY=--config.synthesis.server_public_key
TRAINER_VLLM=--config.rollout.engine=vllm TRAINER_VLLM_ADDRESS=--config.rollout.vllm.address
TRAINER_VLLM_KEY=--config.rollout.vllm.server_public_key
SETUP="make setup EXTRAS=test >/dev/null && .venv/bin/pip install -q 'jax[tpu]'"

die() { echo "tpu_pod.sh: $*" >&2; exit 2; }
show() { local label=$1; shift; printf '%s:' "${label}"; printf ' %q' "$@"; printf '\n'; }

dry_run=0; num_workers=""; repo=syngrpo; setup=0; vllm=""; vllm_key=""
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --num_workers=*) num_workers=${1#*=}; [[ ${num_workers} =~ ^[1-9][0-9]*$ ]] ||
                       die "--num_workers=${num_workers} must be a positive integer" ;;
    --repo=*) repo=${1#*=} ;;
    --setup) setup=1 ;;
    --vllm=*) vllm=${1#*=} ;;
    --vllm_key=*) vllm_key=${1#*=} ;;
    *) die "unknown option $1 (options come before TPU ZONE)" ;;
  esac
  shift
done
[[ $# -ge 6 ]] || die "usage: launch/tpu_pod.sh [options] TPU ZONE CONFIG WORKDIR SERVER_ADDRESS SERVER_KEY [flags]"
tpu=$1; zone=$2; config=$3; workdir=$4; address=$5; key=$6; shift 6
[[ ${address} == tcp://*:* ]] || die "SERVER_ADDRESS=${address} must be tcp://host:port"
[[ -z ${vllm} || ${vllm} == tcp://*:* ]] || die "--vllm=${vllm} must be tcp://host:port"
[[ -z ${vllm} || -n ${vllm_key} ]] || die "--vllm=${vllm} needs --vllm_key=FILE (its public key)"
(( dry_run )) || [[ -f ${key} ]] || die "SERVER_KEY=${key} is not a file (the data server's public key)"
(( dry_run )) || [[ -z ${vllm} || -f ${vllm_key} ]] || die "--vllm_key=${vllm_key} is not a file"
if [[ -z ${num_workers} ]]; then
  endpoints=$(gcloud compute tpus tpu-vm describe "${tpu}" --zone="${zone}" \
    --format='value(networkEndpoints.ipAddress)')
  IFS=';' read -r -a ips <<< "${endpoints}"
  num_workers=${#ips[@]}
fi

# Keys land in each worker's home directory; the trainer reads them from there ($HOME expands on the worker).
flags=("${TRAINER_SERVER_ADDRESS}=${address}")
copies=("${key}" syngrpo-server.key)
remote_keys="${TRAINER_SERVER_KEY}=\"\$HOME/syngrpo-server.key\""
if [[ -n ${vllm} ]]; then
  flags+=("${TRAINER_VLLM}" "${TRAINER_VLLM_ADDRESS}=${vllm}")
  copies+=("${vllm_key}" syngrpo-vllm.key)
  remote_keys+=" ${TRAINER_VLLM_KEY}=\"\$HOME/syngrpo-vllm.key\""
fi
train=$(printf '%q ' .venv/bin/python "${TRAINER[@]}" --config="${config}" --workdir="${workdir}" "${flags[@]}" "$@")
remote="cd $(printf %q "${repo}") && "
(( setup )) && remote+="${SETUP} && "
remote+="exec ${train}${remote_keys}"

pids=()
for ((i = 0; i < num_workers; i++)); do
  for ((k = 0; k < ${#copies[@]}; k += 2)); do
    scp=(gcloud compute tpus tpu-vm scp "${copies[k]}" "${tpu}:${copies[k + 1]}" --zone="${zone}" --worker="${i}")
    if (( dry_run )); then show "worker ${i} key" "${scp[@]}"; else "${scp[@]}"; fi
  done
  ssh=(gcloud compute tpus tpu-vm ssh "${tpu}" --zone="${zone}" --worker="${i}" --command="${remote}")
  if (( dry_run )); then
    show "worker ${i}" "${ssh[@]}"
  else
    "${ssh[@]}" &
    pids+=("$!")
  fi
done
(( dry_run )) && exit 0

stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
trap 'stop; wait; exit 130' INT TERM
status=0
for _ in "${pids[@]}"; do
  wait -n || { status=$?; break; }
done
if (( status )); then
  echo "tpu_pod.sh: a worker exited with status ${status}; ending the other sessions" >&2
  stop
fi
wait || true
exit "${status}"
