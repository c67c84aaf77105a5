"""`python tools/cudnn_heuristics.py train ...`: the mmdigits CLI with cuDNN's autotuning off, so
that tools/gpu_bench.sh can tell how much of the first epoch on a GPU is `cudnn.benchmark` trying
every convolution algorithm (with it off, cuDNN's heuristics pick one without timing them). Runs
that record their step (the default on one GPU) configure it off themselves; this tool turns it off
for the rest (--no-cuda-graph, --compile, torchrun jobs of several processes)."""

import torch

import mmdigits.runs
from mmdigits.cli import run

configure = mmdigits.runs.configure


def configure_without_autotuning(device: torch.device, deterministic: bool = False, autotune: bool = True) -> None:
    configure(device, deterministic, autotune=False)  # what recording runs do anyway; here for every run


mmdigits.runs.configure = configure_without_autotuning
run()
