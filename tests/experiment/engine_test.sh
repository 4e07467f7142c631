#!/usr/bin/env bash
# End-to-end checks of `winclip run` with the demo model on the MVTec AD
# samples, each in a fresh temporary folder:
#
#   invariance  1, 2 and 3 ranks give byte-identical cells.csv and table.md
#   warm        a rerun on a warm cache does no image or text forward pass
#   resume      SIGKILL of one rank mid-run, then the same command again,
#               gives the same cells.csv and table.md as an uninterrupted run
#   corrupt     a damaged cache shard is reported by path and recomputed; a
#               malformed index entry and stale temporary files are ignored
#   failing     a wrong-size mask, an unreadable image, a defect image without
#               its mask and more shots than training images fail only the
#               cells they concern; the exit status is 1 with one line per
#               failed cell
#   shared      two experiments share a cache: a float32 run after a float16
#               one equals a cold float32 run, a grid over the same images
#               runs no forward pass, a changed switch only re-scores
#   plan        `winclip plan` counts cached units and finished cells as a
#               run then finds them, and reports a corrupt shard without
#               deleting it
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

# make_yaml FILE DATA_ROOT SHOTS SEEDS [CLASSES] [DTYPE] [SWITCHES]
make_yaml() {
    cat >"$1" <<YAML
name: engine-test
datasets:
  - type: mvtec
    root: $2
    classes: ${5:-[bottle, screw]}
backbones:
  - name: tinyclip-demo
    checkpoint: $repo/models/demo/tinyclip-vit-240.safetensors
    model_config: $repo/models/demo/tinyclip-vit-240.json
    random_weights: true
grid:
  prompt_sets: [paper]
  shots: $3
  seeds: $4
${7:-}
cache:
  folder: $work/cache-unused
  dtype: ${6:-float32}
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
    # The demo weights are recognised by their hash even when the YAML does
    # not flag them: the table and run.json must still carry the warning.
    sed -e '/random_weights/d' -e "s#\.\./#$repo/#" "$quickstart" >"$work/unflagged.yaml"
    run_ranks 1 "$work/unflagged.log" "$work/unflagged.yaml" --out "$work/unflagged" \
        --cache "$work/cache" || { cat "$work/unflagged.log"; fail "unflagged run failed"; }
    grep -q 'random weights' "$work/unflagged/table.md" ||
        fail "table.md of the unflagged demo backbone lacks the random-weights warning"
    grep -q '"random_weights": true' "$work/unflagged/run.json" ||
        fail "run.json of the unflagged demo backbone says its weights are not random"
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
    # Valid JSON that is not an index entry, and leftovers of a killed writer.
    echo '[1, 2]' >"$work/cache/index/img-0000.json"
    echo 'partial' >"$work/cache/shards/.tmp-1-0-img-0000.h5"
    echo 'partial' >"$work/cache/index/.tmp-1-1-img-0000.json"
    echo 'partial' >"$work/cache/text/.tmp-1-2-0000.h5"
    # A rank that fails while others wait must not hang the job: bound the run.
    timeout 120 "$mpiexec" -np 2 --oversubscribe --bind-to none -x OMP_WAIT_POLICY \
        $([[ $(id -u) -eq 0 ]] && echo --allow-run-as-root) "$winclip" run "$work/e.yaml" \
        --out "$work/second" --cache "$work/cache" >"$work/second.log" 2>&1 ||
        { cat "$work/second.log"; fail "second run failed or hung"; }
    grep -q "unreadable index entry $work/cache/index/img-0000.json" "$work/second.log" ||
        { cat "$work/second.log"; fail "the malformed index entry was not reported by path"; }
    grep -q "corrupt cache file $shard" "$work/second.log" ||
        { cat "$work/second.log"; fail "the corrupt shard was not reported by path"; }
    grep -Eq ' [1-9][0-9]* image forward passes' "$work/second.log" ||
        fail "the corrupt shard's embeddings were not recomputed"
    same_results "$work/first" "$work/second"
    ;;
failing)
    cp -r "$repo/data/mvtec_sample" "$work/data"
    # A class whose defect image lacks its mask (the whole class fails: its
    # test set is incomplete) and one with a single training image (k = 2
    # fails, k = 0 and 1 run).
    cp -r "$work/data/bottle" "$work/data/nomask"
    rm "$work/data/nomask/ground_truth/broken_large/006_mask.png"
    cp -r "$work/data/screw" "$work/data/fewtrain"
    rm "$work/data/fewtrain/train/good/001.png" "$work/data/fewtrain/train/good/002.png"
    # A bottle mask of the wrong size (screw masks are 1024 x 1024, bottle images 900 x 900)
    # and a screw training image that is not an image.
    cp "$work/data/screw/ground_truth/scratch_head/000_mask.png" \
        "$work/data/bottle/ground_truth/broken_large/006_mask.png"
    printf 'this is not a png' >"$work/data/screw/train/good/002.png"
    make_yaml "$work/e.yaml" "$work/data" "[0, 1, 2]" "[0, 1, 2]" "[bottle, screw, nomask, fewtrain]"
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
    nomask_failed=$(grep -c '^mvtec,nomask,.*,failed,.*006.png has no mask' "$csv" || true)
    [[ $nomask_failed -eq 7 ]] || { cat "$csv"; fail "expected 7 failed nomask cells"; }
    few_failed=$(grep -c '^mvtec,fewtrain,.*,2,.*,failed,.*has only 1 training images' "$csv" || true)
    [[ $few_failed -eq 3 ]] || { cat "$csv"; fail "expected the 3 fewtrain k = 2 cells to fail"; }
    few_ok=$(grep -c '^mvtec,fewtrain,.*,ok,$' "$csv" || true)
    [[ $few_ok -eq 4 ]] || { cat "$csv"; fail "expected the 4 fewtrain k = 0, 1 cells to run"; }
    lines=$(grep -c 'failed cell mvtec/' "$work/run.log" || true)
    [[ $lines -eq $((bottle_failed + screw_failed + nomask_failed + few_failed)) ]] ||
        fail "expected one summary line per failed cell, got $lines"
    grep -q '"failures"' "$work/out/run.json" || fail "run.json lacks the failures"
    echo "$bottle_failed bottle and $screw_failed screw cells failed as expected"
    ;;
shared)
    data=$repo/data/mvtec_sample
    make_yaml "$work/half.yaml" "$data" "[0, 1]" "[0]" "[bottle]" float16
    make_yaml "$work/full.yaml" "$data" "[0, 1]" "[0]" "[bottle]" float32
    run_ranks 1 "$work/half.log" "$work/half.yaml" --out "$work/half" --cache "$work/cache" ||
        { cat "$work/half.log"; fail "float16 run failed"; }
    run_ranks 1 "$work/full.log" "$work/full.yaml" --out "$work/full" --cache "$work/cache" ||
        { cat "$work/full.log"; fail "float32 run on the shared cache failed"; }
    run_ranks 1 "$work/cold.log" "$work/full.yaml" --out "$work/cold" --cache "$work/cache-cold" ||
        { cat "$work/cold.log"; fail "cold float32 run failed"; }
    # float16 values must never be served to a float32 run.
    same_results "$work/cold" "$work/full"
    # Another grid over the same images (other seeds) embeds nothing.
    make_yaml "$work/other.yaml" "$data" "[1]" "[1, 2]" "[bottle]" float32
    run_ranks 1 "$work/other.log" "$work/other.yaml" --out "$work/other" --cache "$work/cache" ||
        { cat "$work/other.log"; fail "second experiment failed"; }
    grep -q '0 image forward passes, 0 text forward passes' "$work/other.log" ||
        { cat "$work/other.log"; fail "the second experiment recomputed shared embeddings"; }
    # A scoring switch re-scores from the cache without any forward pass.
    make_yaml "$work/switch.yaml" "$data" "[0, 1]" "[0]" "[bottle]" float32 \
        "$(printf '  switches:\n    - preset: paper\n      temperature: 0.07')"
    run_ranks 1 "$work/switch.log" "$work/switch.yaml" --out "$work/switch" --cache "$work/cache" ||
        { cat "$work/switch.log"; fail "switch run failed"; }
    grep -q '0 image forward passes, 0 text forward passes' "$work/switch.log" ||
        { cat "$work/switch.log"; fail "changing the temperature re-embedded"; }
    grep -q '^mvtec,bottle,tinyclip-demo,paper,winclip+,1,0,t0.07,.*,ok,$' "$work/switch/cells.csv" ||
        { cat "$work/switch/cells.csv"; fail "the switch is not in the cells"; }
    ;;
plan)
    make_yaml "$work/e.yaml" "$repo/data/mvtec_sample" "[0, 1]" "[0]" "[bottle]"
    "$winclip" plan "$work/e.yaml" --out "$work/out" --cache "$work/cache" >"$work/plan1.txt" \
        2>"$work/plan1.log" || { cat "$work/plan1.log"; fail "plan failed"; }
    grep -q '^cells: 2 (0 already finished, 0 cannot run)' "$work/plan1.txt" ||
        { cat "$work/plan1.txt"; fail "cold plan: wrong cell counts"; }
    # bottle: 5 test images + 3 training images, one of which seed 0 draws.
    grep -q '^image embedding units: 6 (0 cached, 6 to compute)' "$work/plan1.txt" ||
        { cat "$work/plan1.txt"; fail "cold plan: wrong unit counts"; }
    grep -q '^work: 6 image forward passes' "$work/plan1.txt" ||
        { cat "$work/plan1.txt"; fail "cold plan: wrong work"; }
    run_ranks 1 "$work/run.log" "$work/e.yaml" --out "$work/out" --cache "$work/cache" ||
        { cat "$work/run.log"; fail "run failed"; }
    grep -q '6 image forward passes, 1 text forward passes' "$work/run.log" ||
        { cat "$work/run.log"; fail "the run did not do what the plan announced"; }
    "$winclip" plan "$work/e.yaml" --out "$work/out" --cache "$work/cache" >"$work/plan2.txt" \
        2>"$work/plan2.log" || { cat "$work/plan2.log"; fail "second plan failed"; }
    grep -q '^cells: 2 (2 already finished' "$work/plan2.txt" &&
        grep -q '^image embedding units: 6 (6 cached, 0 to compute)' "$work/plan2.txt" &&
        grep -q '^text prototype units: 1 (1 cached, 0 to compute)' "$work/plan2.txt" ||
        { cat "$work/plan2.txt"; fail "warm plan: wrong counts"; }
    shard=$(ls "$work"/cache/shards/*.h5 | head -n 1)
    truncate -s 100 "$shard"
    "$winclip" plan "$work/e.yaml" --out "$work/out" --cache "$work/cache" >"$work/plan3.txt" \
        2>"$work/plan3.log" || { cat "$work/plan3.log"; fail "third plan failed"; }
    grep -qF "  $shard" "$work/plan3.txt" || { cat "$work/plan3.txt"; fail "corrupt shard not listed"; }
    [[ -f $shard ]] || fail "plan deleted a cache file"
    ;;
*)
    fail "unknown mode"
    ;;
esac
echo "PASS ($mode)"
