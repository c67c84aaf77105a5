#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one go: wall time and test accuracy of `mmdigits train`
# at 60,000 pairs x 20 epochs (the defaults, which on one GPU record the step as a CUDA graph and
# warm the GPU up while the data loads: two seeds, then every registered model recorded once,
# 1-GPU torchrun, with --self-train, without the warm-up, without the graph, with the seconds of
# each piece of the run from tools/trace_run.py),
# `mmdigits bench --device cuda` with and without the graph, the pieces outside the steps beside
# their alternatives (tools/gpu_pieces.py), the GPU recipe against the CPU recipe
# on a foreign-profile set (batch 512 and the automatic epochs), then --compile cold and warm and
# the other batch sizes.
# Usage, in the repository's root: bash tools/gpu_bench.sh OUT_DIR   (a CUDA GPU; every step is time-boxed)
set -u
out=${1:?usage: gpu_bench.sh OUT_DIR}
mkdir -p "$out"
work=${WORK:-/tmp/mmdigits-gpu}
mkdir -p "$work"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
log=$out/log.txt summary=$out/summary.txt
mm() { python3 -m mmdigits "$@"; }
note() { echo "$*" | tee -a "$summary"; }

# train NAME LIMIT DATA [train options...]: wall seconds of the whole command, then test accuracy
train() {
    local name=$1 limit=$2 data=$3
    shift 3
    local started wall_ms test_acc last
    started=$(date +%s%N) logged=$(wc -l <"$log")
    timeout "$limit" "${TRAIN[@]}" train --data "$data" --out "$work/$name" --overwrite "$@" >>"$log" 2>&1
    rc=$?
    wall_ms=$((($(date +%s%N) - started) / 1000000))
    mm evaluate -c "$work/$name/best.pth" --data "$data" --labels "$data/y_test.csv" --out "$work/$name-eval" --overwrite \
        >"$work/$name-eval.txt" 2>>"$log"
    cat "$work/$name-eval.txt" >>"$log"  # the per-condition and per-digit tables
    test_acc=$(grep -m1 -o 'accuracy [0-9.]*' "$work/$name-eval.txt")
    last=$(tail -n 1 "$work/$name/metrics.csv" 2>/dev/null)
    # the epochs' own seconds: the first (start-up of the device) and all; wall minus all is the rest
    epochs_s=$(awk -F, 'NR == 2 {first = $8} NR > 1 {all += $8} END {printf "first %.1fs, all %.1fs", first, all}' \
        "$work/$name/metrics.csv" 2>/dev/null)
    note "$name rc=$rc wall=${wall_ms}ms epochs ${epochs_s:-?} test ${test_acc:-?} | last epoch: ${last:-?}"
    tail -n +$((logged + 1)) "$log" | grep -m1 '^trace:' | tee -a "$summary"  # tools/trace_run.py's pieces
    cp "$work/$name/metrics.csv" "$work/metrics-$name.csv" 2>/dev/null
}
TRAIN=(python3 -m mmdigits)

note "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
note "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')"
note "$(nproc) CPU cores"

# Data: the shipped profile at the competition's size, a foreign profile at half of it.
big=${PAIRS:-60000} epochs=${EPOCHS:-20} device=${DEVICE:-cuda}  # PAIRS=600 EPOCHS=1 DEVICE=cpu: a dry run
mm data make --out "$work/S" --train "$big" --test $((big / 6)) >>"$log" 2>&1 &
mm data make --out "$work/F" --profile foreign --train $((big / 2)) --test $((big / 12)) >>"$log" 2>&1 &
wait
note "data made"

# Untimed: one short run first, so that the timed ones below all find torch's CUDA libraries in the
# page cache (a fresh machine reads them from disk once; the first timed run would pay it alone).
timeout 90 python3 -m mmdigits train --data "$work/S" --max-samples 4000 --epochs 1 --out "$work/warmup" --overwrite >>"$log" 2>&1
note "warm-up run rc=$?"

# In the order of what a session with little device time needs first: the issue's command with
# the defaults, then what tells the defaults' pieces apart.
TRAIN=(python3 tools/trace_run.py)                                       # the seconds of each piece
train default20 120 "$work/S" --epochs "$epochs"                         # the issue's command
train default20_seed1 120 "$work/S" --epochs "$epochs" --seed 1
# Every registered model, the step recorded as `train` does by default on one GPU: none may fail.
timeout 150 python3 tools/graph_every_model.py "$work/S" "$work/every" 2>>"$log" | tee -a "$summary"
note "graph_every_model rc=${PIPESTATUS[0]}"
timeout 200 python3 -m mmdigits bench --device "$device" --samples "$big" --epochs "$epochs" --reference-epochs 3 \
    --out "$out/bench_graph.json" >>"$log" 2>&1
note "bench (default: the step recorded) rc=$?"
# The pieces outside the steps, each beside the cheaper way left untried for want of a GPU (about 15 s).
timeout 90 python3 tools/gpu_pieces.py "$work/S" "$work/pieces" 2>>"$log" | tee -a "$summary"
note "gpu_pieces rc=${PIPESTATUS[0]}"
TRAIN=(torchrun --standalone --nproc-per-node=1 -m mmdigits)           # one process: a plain run, so it
train torchrun20 120 "$work/S" --epochs "$epochs"                        # records the step too
TRAIN=(python3 -m mmdigits)                                              # --self-train records its second
train selftrain20 150 "$work/S" --epochs "$epochs" --self-train          # phase's step again (untried on a GPU)
TRAIN=(python3 tools/cold_start.py)                                      # no warm-up thread: what it saves
train cold20 120 "$work/S" --epochs "$epochs"
TRAIN=(python3 tools/trace_run.py)
train eager20 120 "$work/S" --epochs "$epochs" --no-cuda-graph           # launched op by op (40.6 s before)
TRAIN=(python3 -m mmdigits)
train foreign_gpu 120 "$work/F"                                          # auto: 512 x 31 epochs, recorded
train foreign_cpu 150 "$work/F" --batch-size 256 --lr 3e-3 --no-cuda-graph  # the CPU recipe, same epochs
# Where the time outside the epochs goes, in more detail than the `trace:` lines: one epoch under
# cProfile, with the import times; the whole profile kept for pstats.
timeout 90 python3 -X importtime -m cProfile -o "$out/startup.prof" -m mmdigits train --data "$work/S" --epochs 1 \
    --out "$work/startup" --overwrite >>"$log" 2>"$out/importtime.txt"
note "startup profile rc=$?"
python3 -c 'import pstats, sys; pstats.Stats(sys.argv[1]).sort_stats("cumulative").print_stats(60)' \
    "$out/startup.prof" >"$out/startup.txt" 2>&1
train compile20 180 "$work/S" --epochs "$epochs" --compile               # CUDA graphs, cold cache
train compile20_warm 120 "$work/S" --epochs "$epochs" --compile          # the compile cache warm
timeout 200 python3 -m mmdigits bench --device "$device" --samples "$big" --epochs "$epochs" --reference-epochs 3 \
    --no-cuda-graph --out "$out/bench.json" >>"$log" 2>&1
note "bench --no-cuda-graph rc=$?"
TRAIN=(python3 tools/cudnn_heuristics.py)                                # cuDNN's autotuning off without
train eager20_heuristics 120 "$work/S" --epochs "$epochs" --no-cuda-graph  # the graph
TRAIN=(python3 -m mmdigits)
train gpu20_512 120 "$work/S" --epochs "$epochs" --batch-size 512        # half the GPU batch
train gpu_auto 100 "$work/S"                                            # auto: 1024 x 15
train cpu20 150 "$work/S" --epochs "$epochs" --batch-size 256 --lr 3e-3 --no-cuda-graph  # the recipe the issue
                                                                          # timed (106.7 s on 2026-11-28)
tar -C "$work" -cf "$out/metrics.tar" $(cd "$work" && ls metrics-*.csv) 2>/dev/null
cat "$summary"
