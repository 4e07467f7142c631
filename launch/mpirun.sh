#!/usr/bin/env bash
# Starts a command on N MPI ranks of this machine with the settings that were
# fastest here (docs/running-on-a-cluster.md):
#
#   launch/mpirun.sh N COMMAND [ARGS...]
#   launch/mpirun.sh 2 build/apps/winclip/winclip run experiments/quickstart.yaml
#
# - one core per rank (--bind-to core) while ranks <= cores; with more ranks
#   than cores, --oversubscribe and no binding (each rank then computes its
#   share of the cores and runs one thread);
# - --allow-run-as-root when started as root (containers);
# - OMP_WAIT_POLICY=passive so idle OpenMP threads sleep instead of spinning.
# Extra mpirun options go in WINCLIP_MPIRUN_ARGS.
set -euo pipefail

if (($# < 2)) || ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1)); then
    echo "usage: $0 N COMMAND [ARGS...]   (N >= 1 ranks)" >&2
    exit 2
fi
ranks=$1
shift

args=(-np "$ranks")
[[ $(id -u) -eq 0 ]] && args+=(--allow-run-as-root)
cores=$(nproc)
if ((ranks > cores)); then
    args+=(--oversubscribe --bind-to none)
else
    args+=(--bind-to core)
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
args+=(-x OMP_WAIT_POLICY)
[[ -n ${WINCLIP_THREADS:-} ]] && args+=(-x WINCLIP_THREADS)
# shellcheck disable=SC2206
extra=(${WINCLIP_MPIRUN_ARGS:-})
exec mpirun "${args[@]}" "${extra[@]}" "$@"
