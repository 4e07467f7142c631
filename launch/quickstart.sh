#!/usr/bin/env bash
# Sets up what is missing, builds, and runs the quickstart experiment
# (experiments/quickstart.yaml: real MVTec AD images of bottle and screw,
# WinCLIP k=0 and WinCLIP+ k=1,2, seeds 0-2) under mpirun with 2 ranks.
# The table ends up in results/quickstart/table.md.
#
# The quickstart uses the demo checkpoint (a tiny CLIP with RANDOM weights):
# it proves the whole pipeline runs; its scores mean nothing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
launch/setup.sh
launch/mpirun.sh "${WINCLIP_RANKS:-2}" build/apps/winclip/winclip run experiments/quickstart.yaml "$@"
echo
cat results/quickstart/table.md
