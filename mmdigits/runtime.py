"""Device, precision, threads, seeds and determinism: the machine-facing choices in one place."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from mmdigits.errors import UsageError


def pick_device(name: str = "auto") -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU. An explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine (try --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: Apple MPS is not available on this machine (try --device cpu)")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve --precision: bf16 only where the hardware runs it natively, a CUDA GPU of compute
    capability 8.0 or later or a CPU with AVX512-BF16 or AMX. On older GPUs (Kaggle's T4 and P100)
    torch only emulates bf16, and `torch.cuda.is_bf16_supported()` says yes to the emulation."""
    if precision == "fp32":
        return False
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        supported = device.type == "cpu" and cpu_has_fast_bf16()
    if precision == "bf16" and not supported:
        raise UsageError(f"--precision bf16: {device} does not run bf16 natively; use --precision fp32")
    return supported


@contextmanager
def autocast(device: torch.device, bf16: bool, cache: bool = True) -> Iterator[None]:
    """bf16 autocast where `bf16`. On CPU attention takes the plain-matmul kernel in either precision:
    torch's fused CPU attention in bf16 spends 27 ms on the backward of one batch of 256 x 20 tokens
    that the matmuls do in 3, and in fp32 it makes the flagship's whole step 7-10 % slower
    (docs/benchmarks.md). A step being recorded as a CUDA graph needs `cache=False`: autocast's
    cache of bf16 weights would be freed."""
    with ExitStack() as stack:
        if device.type == "cpu":
            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        if bf16:
            stack.enter_context(torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache))
        yield


@contextmanager
def side_stream(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Run the block on a fresh CUDA stream, ordered after and before the current one: the steps
    before a CUDA graph is recorded must run off the default stream (torch's CUDA graph notes).
    Elsewhere, or not `enabled`, the block runs as it is."""
    if not enabled or device.type != "cuda":
        yield
        return
    current = torch.cuda.current_stream(device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        yield
    current.wait_stream(stream)


def capture_cuda_graph(step: Callable[[], None], generator: torch.Generator) -> Callable[[], None]:
    """Record `step` as one CUDA graph and return its replay. `step` must read and write only
    tensors that outlive it, wait for nothing on the host and keep its shapes; recording runs no
    kernel. `generator` (the augmentation's) is tied to the graph, as torch ties the default one
    (dropout's), so every replay draws new numbers, and re-seeding it between replays holds."""
    graph = torch.cuda.CUDAGraph()
    graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def configure(device: torch.device, deterministic: bool = False, autotune: bool = True) -> None:
    """Threads on CPU, cuDNN autotuning and TF32 on CUDA, or fully deterministic kernels.
    `autotune=False` lets cuDNN's heuristics pick the convolutions: where the step is recorded as a
    CUDA graph, timing every algorithm costs more than it saves (H200, 60,000 pairs x 20 epochs: first
    epoch 2.4 s against 4.8 s, the run 24.3 and 18.9 s against 24.7 and 24.3 s; docs/benchmarks.md)."""
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic
        torch.backends.cudnn.benchmark = autotune and not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def warm_up(device: torch.device) -> None:
    """Forward and backward of the models' kinds of operation (convolutions, attention, matmuls),
    small and all zeros, in bf16 where the card runs it natively: CUDA's context, cuBLAS and cuDNN
    load their libraries and kernels (once a process) here instead of in the first training steps.
    Draws no random numbers and touches none of the run's tensors."""

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(*shape, device=device, requires_grad=True)

    with autocast(device, use_bf16("auto", device)):
        image = F.conv2d(zeros(8, 1, 28, 28), zeros(16, 1, 3, 3), padding=1)
        audio = F.conv1d(zeros(8, 13, 39), zeros(64, 13, 3), padding=1, stride=2)
        tokens = zeros(8, 4, 20, 16)
        attended = F.scaled_dot_product_attention(tokens, tokens, tokens)
        projected = zeros(8, 64) @ zeros(64, 64)
    sum(part.float().sum() for part in (image, audio, attended, projected)).backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def start_warm_up(device: torch.device) -> threading.Thread | None:
    """On CUDA, run warm_up on another thread while the data loads and splits, and return the thread
    to join before training: nothing else may launch work while a CUDA graph records the step (the
    capture mode is global), and the first steps would wait for the same start-up anyway. H200,
    60,000 pairs x 20 epochs: 22.3 s from start to exit against 24.7 s (docs/benchmarks.md). A
    failure here is silent: the run's own first use of the device then raises it with its message.
    Not a daemon: a run that fails while loading waits for it rather than exit under a CUDA call."""
    if device.type != "cuda":
        return None

    def run() -> None:
        with suppress(Exception):
            warm_up(device)

    thread = threading.Thread(target=run, name="warm up CUDA")
    thread.start()
    return thread


def import_while_loading(module: str) -> None:
    """Start importing `module` on another thread, to overlap the data's loading and splitting,
    which wait on memory more than on the interpreter. For torch._dynamo, which building any torch
    optimizer imports: 0.85 s a run on a 2-core CPU (docs/benchmarks.md). Not a daemon: the
    process waits for it before exiting, never leaving an import half done. A failure here is
    silent: the main thread's own import of the module then fails with the message."""

    def load() -> None:
        with suppress(Exception):  # the main thread's import raises it again, with its message
            importlib.import_module(module)

    if module not in sys.modules:
        threading.Thread(target=load, name=f"import {module}").start()


def seed_everything(seed: int) -> None:
    """Seed torch's global RNG (dropout, init) on every device."""
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job; a plain run is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks, in place (a no-op for a single process)."""
        if self.enabled:
            torch.distributed.all_reduce(tensor)
        return tensor

    def leave(self, together: bool) -> None:
        """Destroy the process group (a no-op for a single process). `together`: first wait for every
        rank, so that none leaves while rank 0 still writes its last files. Not after a failure, when
        the other ranks may never come."""
        if not self.enabled:
            return
        if together:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


SINGLE = Distributed()


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun set up (NCCL on GPUs, Gloo on CPU), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE, pick_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_name in ("auto", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not torch.distributed.is_initialized():
        # torch._dynamo first: imported once a group exists, it keeps the group alive past destroy_process_group,
        # and Gloo's threads with it until the process exits, which then aborts about one time in 200 (torch 2.13)
        importlib.import_module("torch._dynamo")
        torch.distributed.init_process_group(backend)
    return Distributed(rank, world, local_rank), device
