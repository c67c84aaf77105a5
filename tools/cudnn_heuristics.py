"""`python tools/cudnn_heuristics.py train ...`: the mmdigits CLI with cuDNN's autotuning off, so
that tools/gpu_bench.sh can tell how much of the first epoch on a GPU is `cudnn.benchmark` trying
every convolution algorithm (with it off, cuDNN's heuristics pick one without timing them)."""

import torch

import mmdigits.runs
from mmdigits.cli import run

configure = mmdigits.runs.configure


def configure_without_autotuning(device: torch.device, deterministic: bool = False) -> None:
    configure(device, deterministic)
    torch.backends.cudnn.benchmark = False


mmdigits.runs.configure = configure_without_autotuning
run()
