"""`python tools/cold_start.py train ...`: the mmdigits CLI without the GPU's warm-up thread
(runtime.start_warm_up), so that tools/gpu_bench.sh can time what overlapping CUDA's start-up with
the data's loading saves a run that records its step (22.3 s against 24.7 s on the H200 on
2026-11-30, measured with the thread added by a tool before the product had it)."""

import mmdigits.runs
from mmdigits.cli import run

mmdigits.runs.start_warm_up = lambda device: None  # the device starts up in the first training steps
run()
