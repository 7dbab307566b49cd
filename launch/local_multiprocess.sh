#!/usr/bin/env bash
# N JAX processes of the trainer on this machine, joined into one JAX job through an explicit coordinator: how
# CI and a laptop exercise multi-host training (CPU: the processes exchange data with gloo; GPUs: a slice each).
#   launch/local_multiprocess.sh --num_processes=2 --devices_per_process=2 configs/tiny_cpu.py workdirs/mp
#   launch/local_multiprocess.sh --platform=gpu --num_processes=4 --devices_per_process=2 \
#       configs/rec.py:model=qwen2_5_vl_3b runs/rec3b [--config.field=value ...]
#   launch/local_multiprocess.sh --dry-run --num_processes=2 configs/tiny_cpu.py workdirs/mp   # print, start nothing
# Options (before CONFIG WORKDIR): --num_processes=N (2), --devices_per_process=D (1), --platform=cpu|gpu (cpu),
# --port=P (the coordinator's, 12355), --gpus=LIST (GPU ids to share out, default 0..N*D-1), --dry-run.
# Process i gets JAX_COORDINATOR_ADDRESS=127.0.0.1:P, JAX_NUM_PROCESSES=N and JAX_PROCESS_ID=i (read by
# syngrpo_jax/parallel/distributed.py); on CPU also JAX_PLATFORMS=cpu and D forced host devices in XLA_FLAGS, on
# GPUs CUDA_VISIBLE_DEVICES with its D GPUs. Logs: WORKDIR/logs/process_<i>.log. When one process fails, the
# others are stopped and the script exits with that process's status; Ctrl-C stops them all.
# PYTHON (default .venv/bin/python) and MODULE (default syngrpo_jax.train) choose what each process runs.
# Works today: the processes start and join one JAX job. The trainer itself refuses more than one process until
# multi-process training lands (issue 14, section 1); --num_processes=1 trains as launch/local.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
MODULE=${MODULE:-syngrpo_jax.train}
num_processes=2; devices_per_process=1; platform=cpu; port=12355; gpus=""; dry_run=0

die() { echo "local_multiprocess.sh: $*" >&2; exit 2; }
positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1=$2 must be a positive integer"; }
show() { local label=$1; shift; printf '%s:' "${label}"; printf ' %q' "$@"; printf '\n'; }

while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --num_processes=*) num_processes=${1#*=}; positive --num_processes "${num_processes}" ;;
    --devices_per_process=*) devices_per_process=${1#*=}; positive --devices_per_process "${devices_per_process}" ;;
    --platform=*) platform=${1#*=}; [[ ${platform} == cpu || ${platform} == gpu ]] ||
                    die "--platform=${platform} must be cpu or gpu" ;;
    --port=*) port=${1#*=}; positive --port "${port}" ;;
    --gpus=*) gpus=${1#*=} ;;
    *) die "unknown option $1 (options come before CONFIG WORKDIR)" ;;
  esac
  shift
done
[[ $# -ge 2 ]] || die "usage: launch/local_multiprocess.sh [options] CONFIG WORKDIR [--config.field=value ...]"
config=$1; workdir=$2; shift 2

if [[ ${platform} == gpu ]]; then
  if [[ -z ${gpus} ]]; then
    gpus=$(seq -s, 0 $((num_processes * devices_per_process - 1)))
  fi
  IFS=, read -r -a gpu_ids <<< "${gpus}"
  (( ${#gpu_ids[@]} >= num_processes * devices_per_process )) ||
    die "--gpus=${gpus} has ${#gpu_ids[@]} GPUs; ${num_processes} processes x ${devices_per_process} need more"
fi

commands=()
for ((i = 0; i < num_processes; i++)); do
  env=(JAX_COORDINATOR_ADDRESS="127.0.0.1:${port}" JAX_NUM_PROCESSES="${num_processes}" JAX_PROCESS_ID="${i}")
  if [[ ${platform} == cpu ]]; then
    xla_flags="${XLA_FLAGS:+${XLA_FLAGS} }--xla_force_host_platform_device_count=${devices_per_process}"
    env+=(JAX_PLATFORMS=cpu XLA_FLAGS="${xla_flags}")
  else
    mine=("${gpu_ids[@]:$((i * devices_per_process)):${devices_per_process}}")
    env+=(CUDA_VISIBLE_DEVICES="$(IFS=,; echo "${mine[*]}")")
  fi
  command=(env "${env[@]}" "${PYTHON}" -m "${MODULE}" --config="${config}" --workdir="${workdir}" "$@")
  if (( dry_run )); then
    show "process ${i}" "${command[@]}"
  else
    commands+=("$(printf '%q ' "${command[@]}")")
  fi
done
(( dry_run )) && exit 0

mkdir -p "${workdir}/logs"
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
trap 'stop; wait; exit 130' INT TERM
for i in "${!commands[@]}"; do
  bash -c "exec ${commands[i]}" > "${workdir}/logs/process_${i}.log" 2>&1 &
  pids+=("$!")
  echo "process ${i}: pid $! log ${workdir}/logs/process_${i}.log"
done
status=0
for _ in "${pids[@]}"; do
  wait -n || { status=$?; break; }
done
if (( status )); then
  echo "local_multiprocess.sh: a process exited with status ${status}; stopping the others" >&2
  stop
fi
wait || true
exit "${status}"
