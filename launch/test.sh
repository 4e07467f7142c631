#!/usr/bin/env bash
# Sets up what is missing, builds, and runs the whole test suite through ctest.
# Extra arguments go to ctest, e.g. `launch/test.sh -L unit`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
launch/setup.sh
# MPI tests start mpirun themselves; as root Open MPI needs these two.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd build
ctest --output-on-failure --timeout 900 "$@"
