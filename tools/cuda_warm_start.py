"""`python tools/cuda_warm_start.py train ...`: the mmdigits CLI with the GPU's start-up (CUDA
context, cuBLAS and cuDNN loading their libraries and kernels) run in a thread while the main
thread loads and splits the data, so that tools/gpu_bench.sh can tell what overlapping the two
would save of the 15 s a 60,000-pair run spent outside its epochs on the H200. A measurement, not
the product: it draws no random numbers (the run's seeded streams stay as they are) and touches
none of the run's tensors."""

import sys
import threading
import time

import torch
import torch.nn.functional as F

import mmdigits.runs
from mmdigits.cli import run

configure = mmdigits.runs.configure


def warm(device: torch.device) -> None:
    """Forward and backward of the flagship's kinds of operation, small and all zeros, in bf16."""
    started = time.perf_counter()

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(*shape, device=device, requires_grad=True)

    with torch.autocast("cuda", dtype=torch.bfloat16):
        image = F.conv2d(zeros(8, 1, 28, 28), zeros(16, 1, 3, 3), padding=1)
        audio = F.conv1d(zeros(8, 13, 39), zeros(64, 13, 3), padding=1, stride=2)
        tokens = zeros(8, 4, 20, 16)
        attended = F.scaled_dot_product_attention(tokens, tokens, tokens)
        projected = zeros(8, 64) @ zeros(64, 64)
    total = sum(part.float().sum() for part in (image, audio, attended, projected))
    total.backward()
    torch.cuda.synchronize(device)
    print(f"cuda_warm_start: warm-up thread {time.perf_counter() - started:.2f} s", file=sys.stderr)


fit = mmdigits.runs.fit
warming: list[threading.Thread] = []


def configure_and_warm(device: torch.device, deterministic: bool = False, autotune: bool = True) -> None:
    configure(device, deterministic, autotune)
    if device.type == "cuda":
        warming.append(threading.Thread(target=warm, args=(device,), daemon=True))
        warming[-1].start()


def fit_when_warm(*args, **kwargs):
    """Training waits for the warm-up thread: no other thread may launch work on the GPU while
    --cuda-graph records the step (CUDA's capture mode is global), and the first steps would wait
    for the same start-up anyway."""
    for thread in warming:
        thread.join()
    return fit(*args, **kwargs)


mmdigits.runs.configure = configure_and_warm
mmdigits.runs.fit = fit_when_warm
run()
