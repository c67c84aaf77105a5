"""Every registered model: shapes, gradients to every parameter, eval determinism, round trip;
and a new fusion added with one registry line gets the same checks."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli
from torch import nn

from mmdigits.checkpoint import load_model, save_checkpoint
from mmdigits.config import TrainConfig
from mmdigits.embeddings import embeddings_for
from mmdigits.engine import training_loss
from mmdigits.errors import UsageError
from mmdigits.inference import logits_for, unlike_training
from mmdigits.models import create_model, list_models, model_arguments, registry
from mmdigits.models.attention import attend, encode
from mmdigits.models.dropout import DRAWS, Dropout
from mmdigits.models.fusion import FUSIONS, GatedFusion
from mmdigits.models.registry import register_fusion

BATCH = 6


def inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(BATCH, 28, 28, generator=generator), torch.rand(BATCH, 39, 13, generator=generator)


def test_registry_has_the_four_reference_architectures():
    names = list_models()
    for name in ("cnn_rnn_linear", "cnn_rnn_attention", "cnn_transformer_linear", "cnn_transformer_attention"):
        assert name in names
    with pytest.raises(UsageError, match="unknown model 'cnn_lstm'; choose one of"):
        create_model("cnn_lstm")


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_reaches_every_parameter(name):
    check_gradients(name)


def check_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).train()
    image, audio = inputs()
    logits, aux_logits = model(image, audio, aux=True)
    assert logits.shape == (BATCH, 10) and all(head.shape == (BATCH, 10) for head in aux_logits)
    training_loss(logits, aux_logits, torch.arange(BATCH) % 10, TrainConfig()).backward()
    missing = [key for key, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", list_models())
def test_eval_is_deterministic_and_embed_shapes(name):
    check_eval(name)


def test_inference_in_chunks_gives_what_one_pass_over_the_whole_set_gives():
    """Validation, predict and tsne read a set in chunks (512 pairs on a CPU): every row comes back
    once, in order, as one pass over all of them gives it (1,100 pairs: chunks of 512, 512, 76)."""
    torch.manual_seed(0)
    model = create_model("cnn_transformer_attention").eval()
    image, audio = torch.rand(1100, 28, 28), torch.randn(1100, 39, 13)
    cpu = torch.device("cpu")
    torch.testing.assert_close(logits_for(model, image, audio, cpu), logits_for(model, image, audio, cpu, 1100))
    chunked, whole = embeddings_for(model, image, audio, cpu), embeddings_for(model, image, audio, cpu, 1100)
    for name in ("image", "audio", "fused"):
        torch.testing.assert_close(chunked[name], whole[name])


def check_eval(name: str) -> None:
    model = create_model(name).eval()
    image, audio = inputs()
    with torch.no_grad():
        assert torch.equal(model(image, audio), model(image, audio))
        embedding = model.embed(image, audio)
    arguments = model_arguments(name)
    expected = {"fused"} | ({"image"} if arguments["image"] else set()) | ({"audio"} if arguments["audio"] else set())
    assert set(embedding) == expected
    assert all(value.shape[0] == BATCH and value.dim() == 2 for value in embedding.values())


@pytest.mark.parametrize("name", list_models())
def test_the_fused_embedding_is_what_the_decision_is_read_from(name):
    """The t-SNE map of "fused" should show what the model decides on: its logits must be an affine
    function of that embedding. With the expert vote the fusion's own vector is not (the
    modality heads' logits are added to its head's), and k-means on it found the digits worse
    than on either modality's embedding (NMI 0.64-0.68, now 0.94-0.98; docs/benchmarks.md)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    generator = torch.Generator().manual_seed(3)
    image, audio = torch.rand(600, 28, 28, generator=generator), torch.rand(600, 39, 13, generator=generator)
    with torch.no_grad():
        logits = model(image, audio).double()
        fused = model.embed(image, audio)["fused"].double()
    design = torch.cat([fused, torch.ones(len(fused), 1, dtype=torch.float64)], dim=1)
    assert design.shape[1] < len(design)  # more pairs than unknowns: a fit is a finding, not a given
    solution = torch.linalg.lstsq(design, logits, driver="gelsd").solution  # SVD: rank-safe
    residual = (design @ solution - logits).norm() / (logits - logits.mean(dim=0)).norm()
    assert residual < 1e-4, f"{name}: the logits are not read from the fused embedding (residual {residual:.3f})"


@pytest.mark.parametrize("name", list_models())
def test_each_expert_reads_one_input_and_the_decision_is_the_heads_vote(name):
    """`analyze` scores each head alone to say which input carries each condition: the image
    expert must not change when the audio does, nor the audio expert with the image, and the
    model's logits must be the heads' log-odds added (the expert vote) over the temperature."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    model.temperature.fill_(1.7)
    image, audio = inputs()
    other_image, other_audio = inputs(1)
    with torch.no_grad():
        heads = model.head_logits(image, audio)
        if not model.bimodal:
            assert set(heads) == {"fusion"}
            torch.testing.assert_close(model(image, audio), heads["fusion"] / 1.7)
            return
        torch.testing.assert_close(model(image, audio), sum(heads.values()) / 1.7)
        torch.testing.assert_close(model.head_logits(image, other_audio)["image"], heads["image"])
        torch.testing.assert_close(model.head_logits(other_image, audio)["audio"], heads["audio"])
        assert not torch.allclose(model.head_logits(image, other_audio)["fusion"], heads["fusion"])


@pytest.mark.parametrize("name", list_models())
def test_state_dict_round_trip(name):
    check_round_trip(name)


def check_round_trip(name: str) -> None:
    torch.manual_seed(1)
    model = create_model(name).eval()
    model.fit_normalisation(*inputs(2))
    clone = create_model(name).eval()
    clone.load_state_dict(model.state_dict())
    image, audio = inputs()
    with torch.no_grad():
        assert torch.equal(model(image, audio), clone(image, audio))


def test_audio_encoders_use_time_order():
    """A model that ignored the frame order would give the same output for reversed audio."""
    for name in ("transformer_audio_only", "rnn_audio_only"):
        model = create_model(name).eval()
        image, audio = inputs()
        with torch.no_grad():
            assert not torch.allclose(model(image, audio), model(image, audio.flip(1)))


def test_unimodal_models_ignore_the_other_input():
    image, audio = inputs()
    image_model, audio_model = create_model("cnn_image_only").eval(), create_model("rnn_audio_only").eval()
    with torch.no_grad():
        assert torch.equal(image_model(image, audio), image_model(image, torch.zeros_like(audio)))
        assert torch.equal(audio_model(image, audio), audio_model(torch.zeros_like(image), audio))


def test_lowrank_factors_are_saved_parameters():
    state = create_model("cnn_rnn_lowrank").state_dict()
    assert {"fusion.image_factor", "fusion.audio_factor", "fusion.rank_weights"} <= set(state)


class ProductFusion(nn.Module):
    """The README's example of a new fusion: the element-wise product of the projected embeddings."""

    def __init__(self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.2, **_) -> None:
        super().__init__()
        self.image, self.audio = nn.Linear(image_dim, hidden), nn.Linear(audio_dim, hidden)
        self.dropout, self.head = nn.Dropout(dropout), nn.Linear(hidden, 10)

    def forward(self, image_tokens, image, audio_tokens, audio):
        fused = torch.tanh(self.image(image)) * torch.tanh(self.audio(audio))
        return fused, self.head(self.dropout(fused))


@pytest.fixture
def product_fusion():
    """A fusion added as a newcomer would: its class and one registry line; removed afterwards."""
    register_fusion("elementwise", ProductFusion)
    yield ["cnn_rnn_elementwise", "cnn_transformer_elementwise"]
    FUSIONS.pop("elementwise")
    for name in ("cnn_rnn_elementwise", "cnn_transformer_elementwise"):
        registry._REGISTRY.pop(name)


def test_a_new_fusion_is_a_class_and_one_registry_line(product_fusion, tiny_data, tmp_path):
    assert set(product_fusion) <= set(list_models())
    for name in product_fusion:  # the registry-wide checks
        check_gradients(name)
        check_eval(name)
        check_round_trip(name)
    out = tmp_path / "run"
    trained = run_cli("train", "--data", tiny_data, "--model", product_fusion[0], "--epochs", "1", "--out", out)
    assert trained.exit_code == 0, trained.output
    model, payload = load_model(out / "best.pth")
    assert isinstance(model.fusion, ProductFusion) and payload["model_kwargs"]["fusion"] == "elementwise"


def test_the_renamed_gated_fusion_loads_checkpoints_saved_as_product(tmp_path):
    model = create_model("cnn_rnn_gated")
    assert isinstance(model.fusion, GatedFusion) and "cnn_rnn_product" not in list_models()
    payload = {"model": "cnn_rnn_product", "model_kwargs": {**model.arguments, "fusion": "product"}}
    save_checkpoint(tmp_path / "old.pth", {**payload, "state_dict": model.state_dict()})
    loaded, _ = load_model(tmp_path / "old.pth")
    image, audio = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(image, audio), model.eval()(image, audio))


def test_transformer_checkpoints_from_before_the_two_layer_stem_still_load(tmp_path):
    """mmdigits 0.1 recorded only the registry's arguments and built a one-layer stem with CLS
    pooling and an image CNN that normalised before pooling; such a checkpoint rebuilds that model,
    and a new one records every argument."""
    torch.manual_seed(0)
    old = create_model(
        "cnn_transformer_attention", audio_stem_layers=1, audio_pool="cls_mean", image_pool_first=False
    ).eval()
    recorded = {
        "image": "cnn",
        "audio": "transformer",
        "fusion": "attention",
        "expert_vote": True,
        "rank": 4,
        "width": 16,
    }
    payload = {"model": "cnn_transformer_attention", "model_kwargs": recorded, "state_dict": old.state_dict()}
    save_checkpoint(tmp_path / "old.pth", payload)
    loaded, _ = load_model(tmp_path / "old.pth")
    image, audio = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(image, audio), old(image, audio))
    new = create_model("cnn_transformer_attention")
    assert (new.arguments["audio_stem_layers"], new.arguments["audio_pool"]) == (2, "mean_max")
    assert new.arguments["image_pool_first"] and isinstance(new.image_encoder.features[1], torch.nn.MaxPool2d)
    assert sum(p.numel() for p in new.parameters()) != sum(p.numel() for p in old.parameters())


def test_checkpoints_from_before_the_pool_first_cnn_still_load(tmp_path):
    """Checkpoints saved before `image_pool_first` existed record every other argument; they
    rebuild the CNN that normalised before pooling, with the same outputs."""
    torch.manual_seed(0)
    old = create_model("cnn_rnn_linear", image_pool_first=False).eval()
    recorded = {key: value for key, value in old.arguments.items() if key != "image_pool_first"}
    save_checkpoint(
        tmp_path / "old.pth", {"model": "cnn_rnn_linear", "model_kwargs": recorded, "state_dict": old.state_dict()}
    )
    loaded, _ = load_model(tmp_path / "old.pth")
    image, audio = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(image, audio), old(image, audio))
    assert loaded.arguments["image_pool_first"] is False


@pytest.mark.parametrize("train", [False, True])
def test_batch_first_attention_is_torchs_attention_on_the_same_parameters(train):
    """`attend` and `encode` replace nn.MultiheadAttention's and nn.TransformerEncoder's forward
    (for speed) and must compute the same thing, the attention's dropout draws included, so that
    checkpoints of either load into the other and a seed trains the same model. (The encoder's
    residual dropout, 0 in AudioTransformer, would draw its masks in another memory order.)"""
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(32, 4, dropout=0.3, batch_first=True).train(train)
    layer = nn.TransformerEncoderLayer(32, 4, 64, 0.0, activation="gelu", batch_first=True, norm_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).train(train)
    query, context = torch.randn(5, 7, 32), torch.randn(5, 9, 32)
    cases = [
        (lambda: attend(attention, query, context), lambda: attention(query, context, context, need_weights=False)[0]),
        (lambda: attend(attention, context), lambda: attention(context, context, context, need_weights=False)[0]),
        (lambda: encode(encoder, context), lambda: encoder(context)),
    ]
    for ours, torchs in cases:
        torch.manual_seed(1)
        expected = torchs()
        torch.manual_seed(1)
        torch.testing.assert_close(ours(), expected, rtol=1e-5, atol=1e-6)


def test_the_audio_transformers_layer_norms_read_contiguous_tokens():
    """The stem's output is transposed to (B, tokens, d); left with those strides, the whole residual
    stream inherits them and every layer norm copies its input before it runs, forward and backward
    (about 1 % of the flagship's CPU step, docs/benchmarks.md)."""
    model = create_model("cnn_transformer_attention")
    layouts = []
    for norm in [model.audio_encoder.norm] + [
        part for layer in model.audio_encoder.encoder.layers for part in (layer.norm1, layer.norm2)
    ]:
        norm.register_forward_pre_hook(lambda module, args: layouts.append(args[0].is_contiguous()))
    model(*inputs())
    assert layouts == [True] * 5


def test_cpu_dropout_drops_every_value_alone_with_its_probability_and_keeps_the_mean():
    """The models' dropout draws its CPU mask as four 16-bit lanes of each 64-bit random word: every
    lane must drop with the probability asked, independently of the lane beside it (a generator of
    63-bit words would never drop the fourth lane), what is kept is scaled so the mean stays, the
    gradient passes the same mask, a seed repeats it, and in eval mode nothing changes."""
    dropout = Dropout(0.1)
    values = torch.ones(250_000, 4, requires_grad=True)  # column j: lane j of every word
    torch.manual_seed(0)
    out = dropout(values)
    dropped = out == 0
    assert ((dropped.float().mean(dim=0) - 0.1).abs() < 0.003).all()  # 5 standard errors of 250,000
    assert abs((dropped[:, 0] & dropped[:, 1]).float().mean() - 0.01) < 0.001
    assert (out[~dropped] == DRAWS / (DRAWS - round(0.1 * DRAWS))).all()
    assert abs(out.mean().item() - 1) < 0.003
    out.sum().backward()
    assert torch.equal(values.grad, out.detach())
    torch.manual_seed(0)
    assert torch.equal(dropout(values), out)
    assert torch.equal(dropout.eval()(values), values)


def test_inputs_unlike_the_training_data_are_named_for_the_modalities_a_model_reads():
    """[0, 1] MFCC given to a model whose statistics come from raw ones (-200..200) have a sliver of
    the training spread: unlike_training names the audio file; the training units pass, and a
    model that does not read the audio says nothing about it."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(300, 28, 28, generator=generator, dtype=torch.float64)
    raw_audio = torch.randn(300, 39, 13, generator=generator, dtype=torch.float64) * 60 + 10
    scaled_audio = (raw_audio - raw_audio.min()) / (raw_audio.max() - raw_audio.min())
    names = ("x_test_wr.npy", "x_test_sp.npy")
    for name, expected in (("cnn_rnn_linear", 1), ("cnn_image_only", 0)):
        model = create_model(name)
        model.fit_normalisation(image.float(), raw_audio)
        assert unlike_training(model, image.numpy(), raw_audio.numpy(), names) == []
        found = unlike_training(model, image.numpy(), scaled_audio.numpy(), names)
        assert len(found) == expected and all(line.startswith("x_test_sp.npy: the audio is") for line in found)
