#!/usr/bin/env bash
# End-to-end checks of `winclip run` with the demo model on the MVTec AD
# samples, each in a fresh temporary folder:
#
#   invariance  1, 2 and 3 ranks give byte-identical cells.csv and table.md
#   warm        a rerun on a warm cache does no image or text forward pass
#   resume      SIGKILL of one rank mid-run, then the same command again,
#               gives the same cells.csv and table.md as an uninterrupted run
#   corrupt     a damaged cache shard is reported by path and recomputed
#   failing     a wrong-size mask and an unreadable image fail only the cells
#               that use them; the exit status is 1 with one line per failure
#
# usage: engine_test.sh MODE WINCLIP_BINARY REPO_ROOT [MPIEXEC]
set -euo pipefail

mode=$1
winclip=$2
repo=$3
mpiexec=${4:-mpirun}
work=$(mktemp -d "${TMPDIR:-/tmp}/winclip-engine-$mode.XXXXXX")
trap '[[ -n ${WINCLIP_KEEP_TEST_DIR:-} ]] || rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=passive

fail() {
    echo "FAIL ($mode): $*" >&2
    exit 1
}

# run_ranks N LOG ARGS...: winclip under mpirun with N ranks (oversubscribed,
# unbound: each rank then takes its share of the cores).
run_ranks() {
    local n=$1 log=$2
    shift 2
    local args=(-np "$n" --oversubscribe --bind-to none -x OMP_WAIT_POLICY)
    [[ $(id -u) -eq 0 ]] && args+=(--allow-run-as-root)
    "$mpiexec" "${args[@]}" "$winclip" run "$@" >"$log" 2>&1
}

# make_yaml FILE DATA_ROOT SHOTS SEEDS
make_yaml() {
    cat >"$1" <<YAML
name: engine-test
datasets:
  - type: mvtec
    root: $2
    classes: [bottle, screw]
backbones:
  - name: tinyclip-demo
    checkpoint: $repo/models/demo/tinyclip-vit-240.safetensors
    model_config: $repo/models/demo/tinyclip-vit-240.json
    random_weights: true
grid:
  prompt_sets: [paper]
  shots: $3
  seeds: $4
cache:
  folder: $work/cache-unused
run:
  batch_size: 4
YAML
}

same_results() {
    cmp "$1/cells.csv" "$2/cells.csv" || fail "cells.csv differs: $1 vs $2"
    cmp "$1/table.md" "$2/table.md" || fail "table.md differs: $1 vs $2"
}

quickstart=$repo/experiments/quickstart.yaml
case $mode in
invariance)
    for n in 1 2 3; do
        run_ranks "$n" "$work/np$n.log" "$quickstart" --out "$work/out$n" --cache "$work/cache$n" ||
            { cat "$work/np$n.log"; fail "run with $n ranks failed"; }
    done
    rows=$(($(wc -l <"$work/out1/cells.csv") - 1))
    [[ $rows -eq 14 ]] || fail "expected 14 cells, got $rows"
    grep -q ',failed,' "$work/out1/cells.csv" && fail "a cell failed"
    same_results "$work/out1" "$work/out2"
    same_results "$work/out1" "$work/out3"
    grep -q '"ranks": 3' "$work/out3/run.json" || fail "run.json does not record 3 ranks"
    ;;
warm)
    run_ranks 2 "$work/cold.log" "$quickstart" --out "$work/cold" --cache "$work/cache" ||
        { cat "$work/cold.log"; fail "cold run failed"; }
    grep -q '17 image forward passes, 2 text forward passes' "$work/cold.log" ||
        fail "cold run should embed 17 images and 2 prompt ensembles"
    run_ranks 2 "$work/warm.log" "$quickstart" --out "$work/warm" --cache "$work/cache" ||
        { cat "$work/warm.log"; fail "warm run failed"; }
    grep '0 image forward passes, 0 text forward passes' "$work/warm.log" ||
        { cat "$work/warm.log"; fail "warm run did forward passes"; }
    same_results "$work/cold" "$work/warm"
    ;;
resume)
    run_ranks 2 "$work/clean.log" "$quickstart" --out "$work/clean" --cache "$work/cache-clean" ||
        { cat "$work/clean.log"; fail "clean run failed"; }
    args=(-np 2 --oversubscribe --bind-to none -x OMP_WAIT_POLICY)
    [[ $(id -u) -eq 0 ]] && args+=(--allow-run-as-root)
    # kill_rank_when DIR PATTERN COUNT LOG: starts the run, waits until COUNT
    # files matching PATTERN exist in DIR, then SIGKILLs one rank process.
    kill_rank_when() {
        "$mpiexec" "${args[@]}" "$winclip" run "$quickstart" --out "$work/killed" \
            --cache "$work/cache-killed" >"$4" 2>&1 &
        local launcher=$! n=0
        for _ in $(seq 1 2400); do
            n=$(find "$1" -name "$2" ! -name ".tmp-*" 2>/dev/null | wc -l || true)
            ((n >= $3)) && break
            sleep 0.025
        done
        local victim
        victim=$(pgrep -P "$launcher" | tail -n 1 || true)
        [[ -n $victim ]] || fail "no rank process found under mpirun ($launcher)"
        kill -KILL "$victim"
        if wait "$launcher"; then fail "mpirun reported success after a rank was killed"; fi
        echo "killed rank pid $victim once $n file(s) matched $1/$2"
    }
    # 1. Killed while embedding: as soon as the first cache shard is indexed.
    kill_rank_when "$work/cache-killed/index" '*.json' 1 "$work/killed1.log"
    # 2. Killed while scoring: once a few cells are published.
    kill_rank_when "$work/killed/cells" '*.json' 2 "$work/killed2.log"
    # Temporary files of the killed run are not finished cells.
    done_cells=$(find "$work/killed/cells" -name '*.json' ! -name '.tmp-*' | wc -l)
    ((done_cells < 14)) || fail "every cell finished before the kill; nothing to resume"
    run_ranks 2 "$work/resumed.log" "$quickstart" --out "$work/killed" --cache "$work/cache-killed" ||
        { cat "$work/resumed.log"; fail "resumed run failed"; }
    grep -q "($done_cells finished earlier)" "$work/resumed.log" ||
        { cat "$work/resumed.log"; fail "resumed run did not reuse the $done_cells finished cells"; }
    grep -q '0 image forward passes' "$work/resumed.log" ||
        fail "the resumed run recomputed embeddings the killed runs had cached"
    same_results "$work/clean" "$work/killed"
    ;;
corrupt)
    make_yaml "$work/e.yaml" "$repo/data/mvtec_sample" "[0, 1]" "[0]"
    run_ranks 1 "$work/first.log" "$work/e.yaml" --out "$work/first" --cache "$work/cache" ||
        { cat "$work/first.log"; fail "first run failed"; }
    shard=$(ls -S "$work"/cache/shards/*.h5 | head -n 1)
    size=$(stat -c %s "$shard")
    printf 'garbage!' | dd of="$shard" bs=1 seek=$((size / 2)) conv=notrunc status=none
    run_ranks 2 "$work/second.log" "$work/e.yaml" --out "$work/second" --cache "$work/cache" ||
        { cat "$work/second.log"; fail "second run failed"; }
    grep -q "corrupt cache file $shard" "$work/second.log" ||
        { cat "$work/second.log"; fail "the corrupt shard was not reported by path"; }
    grep -Eq ' [1-9][0-9]* image forward passes' "$work/second.log" ||
        fail "the corrupt shard's embeddings were not recomputed"
    same_results "$work/first" "$work/second"
    ;;
failing)
    cp -r "$repo/data/mvtec_sample" "$work/data"
    # A bottle mask of the wrong size (screw masks are 1024 x 1024, bottle images 900 x 900)
    # and a screw training image that is not an image.
    cp "$work/data/screw/ground_truth/scratch_head/000_mask.png" \
        "$work/data/bottle/ground_truth/broken_large/006_mask.png"
    printf 'this is not a png' >"$work/data/screw/train/good/002.png"
    make_yaml "$work/e.yaml" "$work/data" "[0, 1, 2]" "[0, 1, 2]"
    set +e
    run_ranks 2 "$work/run.log" "$work/e.yaml" --out "$work/out" --cache "$work/cache"
    status=$?
    set -e
    [[ $status -eq 1 ]] || { cat "$work/run.log"; fail "exit status $status, expected 1"; }
    csv=$work/out/cells.csv
    [[ -f $csv ]] || fail "no cells.csv after failures"
    bottle_failed=$(grep -c '^mvtec,bottle,.*,failed,.*006_mask.png' "$csv" || true)
    [[ $bottle_failed -eq 7 ]] || { cat "$csv"; fail "expected 7 failed bottle cells naming the mask"; }
    grep -q '^mvtec,screw,tinyclip-demo,paper,winclip,0,0,.*,ok,$' "$csv" || fail "screw k0 should be ok"
    screw_failed=$(grep -c '^mvtec,screw,.*,failed,.*002.png' "$csv" || true)
    ((screw_failed >= 1)) || { cat "$csv"; fail "no screw cell failed on the unreadable reference"; }
    screw_bad=$(grep '^mvtec,screw,.*,failed,' "$csv" | grep -vc '002.png' || true)
    [[ $screw_bad -eq 0 ]] || fail "a screw cell failed for another reason"
    lines=$(grep -c 'failed cell mvtec/' "$work/run.log" || true)
    [[ $lines -eq $((bottle_failed + screw_failed)) ]] ||
        fail "expected one summary line per failed cell, got $lines"
    grep -q '"failures"' "$work/out/run.json" || fail "run.json lacks the failures"
    echo "$bottle_failed bottle and $screw_failed screw cells failed as expected"
    ;;
*)
    fail "unknown mode"
    ;;
esac
echo "PASS ($mode)"
