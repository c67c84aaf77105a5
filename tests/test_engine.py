"""The training loop: divergence handling, the automatic schedule, batching."""

from __future__ import annotations

import re
import sys

import pytest
import torch
import torch.utils._pytree as pytree
from conftest import FAST_MODEL, run_cli
from torch.utils._python_dispatch import TorchDispatchMode

from mmdigits import augment, engine, runtime
from mmdigits.config import TrainConfig
from mmdigits.errors import TrainingDiverged, UsageError
from mmdigits.models import create_model, list_models
from mmdigits.runs import train_run


def test_nan_loss_stops_and_keeps_the_best_checkpoint(tiny_data, tmp_path, monkeypatch):
    config = TrainConfig(data=str(tiny_data), model=FAST_MODEL, epochs=3, batch_size=256, out=str(tmp_path))
    real_loss = engine.training_loss
    calls = {"n": 0}

    def loss_that_diverges_in_epoch_two(*args):
        calls["n"] += 1
        loss = real_loss(*args)
        return loss * float("nan") if calls["n"] > 1 else loss  # the first epoch has one batch

    monkeypatch.setattr(engine, "training_loss", loss_that_diverges_in_epoch_two)
    with pytest.raises(TrainingDiverged, match="training loss became nan in epoch 2"):
        train_run(config)
    best = torch.load(tmp_path / "best.pth", weights_only=True)
    assert best["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in best["state_dict"].values() if value.is_floating_point())


def test_nan_loss_is_one_line_on_the_cli(tiny_data, tmp_path):
    result = run_cli(
        "train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "2", "--lr", "1e30", "--out", tmp_path
    )
    assert result.exit_code == 1
    assert "training loss became" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("pairs", "batch", "epochs", "gpu_batch"),
    [
        (160, 32, 80, 32),
        (1200, 32, 76, 32),
        (4480, 64, 40, 64),
        (6400, 128, 56, 128),
        (12800, 256, 56, 256),
        (24000, 256, 31, 512),
        (48000, 256, 15, 1024),
    ],
)
def test_automatic_schedule_gives_small_data_enough_steps(pairs, batch, epochs, gpu_batch):
    config = TrainConfig().resolved(pairs)
    assert (config.batch_size, config.epochs, config.lr) == (batch, epochs, 3e-3)
    on_gpu = TrainConfig().resolved(pairs, gpu=True)  # larger batches, the same epochs, lr x sqrt(batch / 256)
    assert (on_gpu.batch_size, on_gpu.epochs) == (gpu_batch, epochs)
    assert on_gpu.lr == pytest.approx(3e-3 * max(1, gpu_batch / 256) ** 0.5)
    given = TrainConfig(batch_size=64, epochs=3, lr=1e-3, cuda_graph=False)
    assert given.resolved(pairs) == given.resolved(pairs, gpu=True) == given


def test_a_batch_larger_than_the_training_split_is_said_and_scales_nothing(tiny_data, tmp_path):
    """A split smaller than --batch-size trains whole each step; the log says so, and the learning
    rate is that of the rows a step takes (it was scaled for 5,000 phantom pairs: 0.0133)."""
    assert TrainConfig(batch_size=5000).resolved(160).lr == pytest.approx(3e-3)
    assert TrainConfig(batch_size=1024).resolved(48000).lr == pytest.approx(6e-3)
    result = run_cli(
        "train", "--data", tiny_data, "--model", FAST_MODEL, "--epochs", "1", "--batch-size", "5000", "--out", tmp_path
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"1 epoch x 1 step of all \d+ training pairs \(fewer than the batch size, 5000\)", result.output)
    assert "= 1 optimiser step (one-cycle, 0 warm-up steps, peak lr 0.003)" in result.output


def test_the_step_is_recorded_as_a_cuda_graph_by_default_only_where_it_can_be():
    """Unless told, a run records its step on one CUDA GPU (H200: 24 s against 40 s for 60,000 pairs
    x 20 epochs) and nowhere else: not on CPU or MPS, not under a torchrun job of several processes,
    not with --compile (which records its own). Told, it does as told, or refuses the place."""
    auto = TrainConfig()
    assert auto.cuda_graph is None and auto.resolved(4800, gpu=True).cuda_graph is True
    assert auto.resolved(4800).cuda_graph is False
    assert auto.resolved(4800, gpu=True, distributed=True).cuda_graph is False
    assert TrainConfig(compile=True).resolved(4800, gpu=True).cuda_graph is False
    assert TrainConfig(cuda_graph=False).resolved(4800, gpu=True).cuda_graph is False
    for device_type, distributed in (("cpu", False), ("mps", False), ("cuda", True)):
        auto.check_place(device_type, distributed)  # the default never refuses a place
        with pytest.raises(UsageError, match="--cuda-graph records the training step on one CUDA GPU"):
            TrainConfig(cuda_graph=True).check_place(device_type, distributed)


def test_batches_have_one_shape_alike_on_every_rank():
    assert engine.batch_bounds(10, 4, 1) == [(0, 4), (4, 8)]  # the remainder waits for the next shuffle
    assert engine.batch_bounds(12, 4, 2) == [(0, 4), (4, 8), (8, 12)]
    assert engine.batch_bounds(3, 4, 1) == [(0, 3)]  # smaller than a batch: one batch
    assert engine.batch_bounds(3, 4, 2) == []  # 3 rows cannot give 2 ranks 2 each


def test_an_epoch_waits_for_the_host_a_fixed_number_of_times(monkeypatch):
    """No .item()/.cpu()/bool(tensor) per batch: the loss and accuracy stay on the device until
    the epoch ends, so a GPU is never left idle waiting for the host between steps."""
    calls: list[str] = []

    def counted(name: str):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("mmdigits"):
                calls.append(name)
            return original(self, *args, **kwargs)

        return wrapper

    def host_waits(n_rows: int) -> int:
        model = create_model(FAST_MODEL)
        data = engine.Tensors(torch.rand(n_rows, 28, 28), torch.randn(n_rows, 39, 13), torch.arange(n_rows) % 10)
        model.fit_normalisation(data.image, data.audio)
        config = TrainConfig(model=FAST_MODEL, batch_size=16, epochs=1)
        optimizer, scheduler = engine.make_optimizer(model, config, n_rows // 16)
        step = engine.TrainStep(model, optimizer, data, config, False)
        calls.clear()
        engine.train_one_epoch(step, scheduler, 1)
        return len(calls)

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    # 2 or 8 batches, the same waits: the loss sum, hits and pairs, copied together at the end
    assert host_waits(32) == host_waits(128) == 1


def test_a_recorded_step_replayed_trains_exactly_as_ordinary_steps():
    """--cuda-graph records the step once, then copies each batch's row indices into it and replays
    it. Emulated on the CPU (recording returns the step without running it; a replay runs it on
    the recorded buffers), two epochs must train exactly as ordinary steps do: the same weights,
    losses and accuracies, every step after the warm-up a replay, with new random draws each."""
    replays: list[torch.Tensor] = []

    def record(run, generator):
        def replay():
            replays.append(generator.get_state())
            run()

        return replay

    def trained(capture) -> tuple[dict[str, torch.Tensor], list[tuple[float, float]]]:
        torch.manual_seed(0)
        model = create_model(FAST_MODEL)
        data = engine.Tensors(torch.rand(160, 28, 28), torch.randn(160, 39, 13), torch.arange(160) % 10)
        model.fit_normalisation(data.image, data.audio)
        config = TrainConfig(model=FAST_MODEL, batch_size=16, epochs=2, cuda_graph=True)
        optimizer, scheduler = engine.make_optimizer(model, config, 20)
        step = engine.TrainStep(model, optimizer, data, config, False, capture=capture)
        figures = [engine.train_one_epoch(step, scheduler, epoch) for epoch in (1, 2)]
        return model.state_dict(), figures

    ordinary, ordinary_figures = trained(None)
    replayed, replayed_figures = trained(record)
    assert len(replays) == 20 - engine.TrainStep.warm_up_steps
    assert len({bytes(state.numpy()) for state in replays}) == len(replays)  # the stream moves on
    assert replayed_figures == ordinary_figures
    assert all(torch.equal(replayed[name], ordinary[name]) for name in ordinary)


class RecordedOps(TorchDispatchMode):
    """Every aten operation run under it, with the tensors it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[torch.Tensor], dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        self.calls.append((str(func), tensors, kwargs))
        return func(*args, **kwargs)


# What a CUDA graph cannot record: a value read back by the host, a shape that depends on the
# data, a tensor made from host numbers (an upload the graph would freeze).
HOST_BOUND = ("_local_scalar_dense", "nonzero.", "masked_select", "unique", "lift_fresh", "is_nonzero", "equal.")
HOST_BOUND += ("bincount", "histc", "repeat_interleave.Tensor")


def host_bound_operations(calls: list[tuple[str, list[torch.Tensor], dict]], device: torch.device) -> list[str]:
    found = [name for name, _, _ in calls if any(word in name for word in HOST_BOUND)]
    found += [  # a boolean index is a nonzero() inside the kernel
        name
        for name, tensors, _ in calls
        if name.startswith("aten.index") and any(t.dtype == torch.bool for t in tensors[1:])
    ]
    found += [name for name, _, kwargs in calls if torch.device(kwargs.get("device", device)) != device]
    return found


@pytest.mark.parametrize("name", list_models())
def test_the_recorded_step_holds_nothing_a_cuda_graph_cannot_record(name):
    """On one CUDA GPU the whole step of any --model is recorded by default. Checked operation by
    operation on the CPU (where no graph exists): no operation reads a value back, makes a shape
    from the data or uploads host numbers; the step's operations and the shapes they give are the
    same on every step. (tools/graph_every_model.py records every model on a GPU.)"""
    model = create_model(name)
    data = engine.Tensors(torch.rand(64, 28, 28), torch.randn(64, 39, 13), torch.arange(64) % 10)
    model.fit_normalisation(data.image, data.audio)
    config = TrainConfig(model=name, batch_size=16, epochs=1, cuda_graph=True)
    optimizer, _ = engine.make_optimizer(model, config, 8)
    step = engine.TrainStep(model, optimizer, data, config, True, capture=lambda run, generator: run)
    step.begin_epoch(1)
    step.run(torch.arange(16))  # the warm-up: AdamW's state is made here, before any recording

    def recorded(rows: torch.Tensor) -> list[tuple[str, list[torch.Tensor], dict]]:
        with RecordedOps() as ops:
            step.run(rows)
        return ops.calls

    first, second = recorded(torch.arange(16, 32)), recorded(torch.arange(48, 64).flip(0))
    assert host_bound_operations(first, data.image.device) == []
    assert [(n, [t.shape for t in ts]) for n, ts, _ in first] == [(n, [t.shape for t in ts]) for n, ts, _ in second]


def test_the_check_for_host_bound_operations_finds_them():
    with RecordedOps() as ops:
        values = torch.arange(6.0)
        values[values > 2].sum()  # a boolean index
        torch.nonzero(values)
        values + torch.tensor([1.0])  # host numbers
        values.to("meta")
        float(values.max())
    assert host_bound_operations(ops.calls, torch.device("cpu")) == [
        "aten.nonzero.default",
        "aten.lift_fresh.default",
        "aten._local_scalar_dense.default",
        "aten.index.Tensor",
        "aten._to_copy.default",
    ]


def test_a_step_that_cannot_be_recorded_says_so_in_one_line():
    model = create_model(FAST_MODEL)
    data = engine.Tensors(torch.rand(64, 28, 28), torch.randn(64, 39, 13), torch.arange(64) % 10)
    model.fit_normalisation(data.image, data.audio)
    config = TrainConfig(model=FAST_MODEL, batch_size=8, cuda_graph=True)
    optimizer, scheduler = engine.make_optimizer(model, config, 8)

    def refuse(run, generator):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore detail")

    step = engine.TrainStep(model, optimizer, data, config, False, capture=refuse)
    failed = r"recording the training step as a CUDA graph failed \(CUDA error: operation not permitted when"
    with pytest.raises(UsageError, match=failed + r".*\); --no-cuda-graph trains op by op"):
        engine.train_one_epoch(step, scheduler, 1)
    assert step.steps == engine.TrainStep.warm_up_steps + 1  # ordinary steps first, then the recording


def test_a_recorded_step_reads_a_learning_rate_the_schedule_moves_in_place():
    """A CUDA graph holds the tensors it was recorded with: the learning rate must be one tensor the
    one-cycle schedule fills in place (also after --resume brings it back as a number), and AdamW's
    momentum must not be cycled (the fused kernel takes it as a number, which a graph freezes)."""
    model = create_model(FAST_MODEL)
    data = engine.Tensors(torch.rand(32, 28, 28), torch.randn(32, 39, 13), torch.arange(32) % 10)
    config = TrainConfig(model=FAST_MODEL, lr=3e-3, cuda_graph=True)
    optimizer, scheduler = engine.make_optimizer(model, config, 100)
    engine.TrainStep(model, optimizer, data, config, False, capture=lambda run, generator: run)
    held = [group["lr"] for group in optimizer.param_groups]
    for _ in range(30):
        optimizer.step()
        scheduler.step()
    assert all(group["lr"] is tensor for group, tensor in zip(optimizer.param_groups, held, strict=True))
    assert float(held[0]) == pytest.approx(scheduler.get_last_lr()[0]) and float(held[0]) > 1e-3
    assert all(group["betas"] == (0.9, 0.999) and group["capturable"] for group in optimizer.param_groups)


@pytest.mark.parametrize("aux_weight", [0.5, 0.0])
def test_the_loss_is_the_fused_heads_plus_the_weighted_mean_of_the_modality_heads(aux_weight):
    """Scored in one cross-entropy call, the loss and its gradients are those of one call per head."""
    torch.manual_seed(0)
    fused, image, audio = (torch.randn(32, 10, requires_grad=True) for _ in range(3))
    labels = torch.arange(32) % 10
    config = TrainConfig(aux_weight=aux_weight)

    def one_call(head: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(head, labels, label_smoothing=config.label_smoothing)

    expected = one_call(fused) + aux_weight * (one_call(image) + one_call(audio)) / 2
    loss = engine.training_loss(fused, [image, audio], labels, config)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    for got, want in zip(
        torch.autograd.grad(loss, [fused, image, audio], materialize_grads=True),
        torch.autograd.grad(expected, [fused, image, audio], materialize_grads=True),
        strict=True,
    ):
        assert torch.allclose(got, want, atol=1e-7)


def test_a_drowned_clip_keeps_nothing_of_its_own():
    """At full weight a drowned clip is noise made of other clips or of none, in the data's own
    spread: changing the clip does not change what it becomes, so nothing of its digit is left for
    the audio head to learn from but "abstain". At share 0 every clip is left as it was."""
    audio = torch.randn(16, 39, 13)
    changed = audio.clone()
    changed[0] = 5.0
    drowned = augment.drown(audio, 1.0, (1.0, 1.0), torch.Generator().manual_seed(0))
    again = augment.drown(changed, 1.0, (1.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.equal(drowned[0], again[0])
    assert 0.3 < drowned.std().item() < 1.5
    assert torch.equal(augment.drown(audio, 0.0, (0.5, 1.0), torch.Generator().manual_seed(0)), audio)


def test_stroke_width_makes_every_chosen_digit_bolder_or_thinner_within_its_range():
    """In z-score units (background -0.5, ink 2.5) every image chosen gets bolder everywhere or
    thinner everywhere, both kinds occur, nothing leaves the image's range; share 0 changes nothing."""
    image = torch.full((64, 28, 28), -0.5)
    image[:, 8:20, 12:15] = 2.5  # a vertical stroke three pixels wide
    image[:, 14, 12:15] = 1.0  # with a fainter pixel row across it
    changed = augment.stroke_width(image, 1.0, torch.Generator().manual_seed(0))
    bolder = (changed >= image).all(dim=(1, 2)) & (changed > image).any(dim=(1, 2))
    thinner = (changed <= image).all(dim=(1, 2)) & (changed < image).any(dim=(1, 2))
    assert (bolder | thinner).all() and bolder.sum() > 16 and thinner.sum() > 16
    assert changed.min() >= -0.5 and changed.max() <= 2.5
    assert torch.equal(augment.stroke_width(image, 0.0, torch.Generator().manual_seed(0)), image)


def test_another_microphone_moves_every_frame_of_a_chosen_clip_by_the_same_offsets():
    """A channel adds one constant per cepstral coefficient to every frame: the change is the same
    in all 39 frames, of the asked spread, on about the asked share of the clips."""
    audio = torch.randn(2000, 39, 13)
    change = augment.offset_channel(audio, 0.5, 0.4, torch.Generator().manual_seed(0)) - audio
    assert torch.allclose(change, change[:, :1].expand_as(change), atol=1e-6)
    moved = change[:, 0].abs().sum(dim=1) > 0
    assert 0.45 < moved.float().mean() < 0.55
    assert change[moved, 0].std().item() == pytest.approx(0.4, rel=0.05)


def test_grey_dilation_is_the_3x3_max_pool_at_every_pixel_edges_included():
    image = torch.randn(8, 28, 28)
    pooled = torch.nn.functional.max_pool2d(image.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    assert torch.equal(augment.grey_dilate(image), pooled)


@pytest.mark.parametrize("bf16", [True, False])
def test_training_on_cpu_takes_the_matmul_attention_not_the_slower_fused_kernel(bf16):
    """torch's fused CPU attention is 10x slower than plain matmuls in bf16 and makes the whole
    step 7-9 % slower in fp32 (docs/benchmarks.md); the autocast must steer attention away from it."""
    q = torch.randn(4, 2, 20, 16, requires_grad=True)
    with runtime.autocast(torch.device("cpu"), bf16=bf16):
        attended = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert "Flash" not in type(attended.grad_fn).__name__
    attended = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert "Flash" in type(attended.grad_fn).__name__  # what torch would take on its own


@pytest.mark.parametrize(("major", "native"), [(6, False), (7, False), (8, True), (9, True)])
def test_auto_precision_takes_bf16_only_on_gpus_that_run_it_natively(major, native, monkeypatch):
    """Kaggle's free GPUs (P100: 6.0, T4: 7.5) can make bf16 tensors, so torch's plain
    `is_bf16_supported()` says yes, but they only emulate its arithmetic: auto must take fp32 there,
    and an explicit --precision bf16 is refused in one line; Ampere (8.x) and Hopper (9.0) run it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: type("Gpu", (), {"major": major}))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)  # emulation works
    gpu = torch.device("cuda")
    assert runtime.use_bf16("auto", gpu) is native and runtime.use_bf16("fp32", gpu) is False
    if native:
        assert runtime.use_bf16("bf16", gpu) is True
    else:
        with pytest.raises(UsageError, match="--precision bf16: cuda does not run bf16 natively; use --precision fp32"):
            runtime.use_bf16("bf16", gpu)


@pytest.mark.parametrize(("name", "blanked_rows_expected"), [("cnn_image_only", False), (FAST_MODEL, True)])
def test_modality_dropout_blanks_only_a_model_that_reads_both(name, blanked_rows_expected):
    """A blanked input is the average one (all zeros in z-scores). A unimodal baseline never gets
    its only input blanked: that would make it weaker than it is, and fusion look better."""
    model = create_model(name)
    data = engine.Tensors(torch.rand(64, 28, 28), torch.randn(64, 39, 13), torch.arange(64) % 10)
    model.fit_normalisation(data.image, data.audio)
    config = TrainConfig(model=name, batch_size=64, epochs=1, augment=False, modality_dropout=0.9)
    optimizer, scheduler = engine.make_optimizer(model, config, 1)
    step = engine.TrainStep(model, optimizer, data, config, False)
    seen: list[torch.Tensor] = []
    forward = model.forward

    def recording(image, audio, **kwargs):
        seen.append(torch.cat([image.flatten(1), audio.flatten(1)], dim=1))
        return forward(image, audio, **kwargs)

    model.forward = recording
    engine.train_one_epoch(step, scheduler, 1)
    image_blank = (seen[0][:, :784] == 0).all(dim=1)
    audio_blank = (seen[0][:, 784:] == 0).all(dim=1)
    assert bool((image_blank | audio_blank).any()) is blanked_rows_expected


def test_a_recorded_step_leaves_the_convolutions_to_cudnns_heuristics(tiny_data, tmp_path, monkeypatch):
    """A run whose step is recorded (--cuda-graph, or the default on CUDA) configures CUDA without
    cuDNN's autotuning (measured faster on an H200, docs/benchmarks.md); otherwise autotuning stays
    on. Checked where train_run configures the device."""
    from mmdigits import runs

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    try:
        runtime.configure(torch.device("cuda"), autotune=False)
        assert cudnn.benchmark is False
        runtime.configure(torch.device("cuda"))
        assert cudnn.benchmark is True
    finally:  # the process's flags as they were, for the tests after this one
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = before

    class Configured(Exception):
        pass

    def record(device, deterministic=False, autotune=True):
        raise Configured(autotune)

    monkeypatch.setattr(runs, "configure", record)
    # (device, --cuda-graph or not or neither, autotuned): the default records the step on CUDA only
    for device, cuda_graph, autotuned in (
        ("cuda", True, False),
        ("cuda", False, True),
        ("cuda", None, False),
        ("cpu", None, True),
    ):
        monkeypatch.setattr(
            runs, "init_distributed", lambda name, device=device: (runtime.SINGLE, torch.device(device))
        )
        config = TrainConfig(model=FAST_MODEL, data=str(tiny_data), out=str(tmp_path / "run"), cuda_graph=cuda_graph)
        with pytest.raises(Configured) as configured:
            train_run(config)
        assert configured.value.args == (autotuned,)


def test_the_gpus_start_up_runs_while_the_data_loads_and_training_waits_for_it(tiny_data, tmp_path, monkeypatch):
    """On CUDA, train_run starts warming the device up before it loads the data (H200: 22.3 s against
    24.7 s for a 60,000-pair run) and joins the warm-up before fitting: a CUDA graph may only be
    recorded with no other thread launching work."""
    from mmdigits import runs

    events: list[str] = []

    class WarmUp:
        def join(self) -> None:
            events.append("joined")

    def start_warm_up(device: torch.device) -> WarmUp:
        events.append(f"warm-up started on {device.type}")
        return WarmUp()

    def load(path, load_train=runs.load_train):
        events.append("load")
        return load_train(path)

    class Fitted(Exception):
        pass

    def fit(*args, **kwargs):
        events.append("fit")
        raise Fitted

    monkeypatch.setattr(runs, "init_distributed", lambda name: (runtime.SINGLE, torch.device("cuda")))
    monkeypatch.setattr(runs, "configure", lambda *args, **kwargs: None)  # the process's CUDA flags untouched
    monkeypatch.setattr(runs, "start_warm_up", start_warm_up)
    monkeypatch.setattr(runs, "load_train", load)
    monkeypatch.setattr(runs, "fit", fit)
    with pytest.raises(Fitted):
        train_run(TrainConfig(model=FAST_MODEL, data=str(tiny_data), out=str(tmp_path / "run")))
    assert events == ["warm-up started on cuda", "load", "joined", "fit"]


def test_the_warm_up_thread_runs_on_cuda_only_and_keeps_its_failures_to_itself(monkeypatch):
    """A warm-up that fails says nothing (the run's own first CUDA call then raises with its
    message); a CPU run starts no thread."""
    import threading

    called, unhandled, real_warm_up = [], [], runtime.warm_up
    monkeypatch.setattr(threading, "excepthook", unhandled.append)

    def warm_up(device: torch.device) -> None:
        called.append(device)
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(runtime, "warm_up", warm_up)
    assert runtime.start_warm_up(torch.device("cpu")) is None
    thread = runtime.start_warm_up(torch.device("cuda", 1))
    thread.join()
    assert called == [torch.device("cuda", 1)] and not unhandled
    real_warm_up(torch.device("cpu"))  # every operation it warms exists and runs
