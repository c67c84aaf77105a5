"""Every registered model: shapes, gradients to every parameter, eval determinism, round trip."""

from __future__ import annotations

import pytest
import torch

from mmdigits.config import TrainConfig
from mmdigits.engine import training_loss
from mmdigits.errors import UsageError
from mmdigits.models import create_model, list_models, model_arguments

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
def test_state_dict_round_trip(name):
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
