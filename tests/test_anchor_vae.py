import math

import numpy as np
import pytest
import torch

from corex_edu import anchor_vae
from corex_edu.errors import ConfigurationError
from corex_edu.training import TrainConfig


def _tiny_config(**changes):
    settings = dict(latents=6, anchored=(0, 1), strength=0.5, image_size=16, train=TrainConfig(epochs=1, batch_size=8))
    settings.update(changes)
    return anchor_vae.AnchorVAEConfig(**settings)


def test_model_shapes_round_trip():
    model = anchor_vae.build_model(_tiny_config())
    x = torch.rand(3, 3, 16, 16)
    mean, log_variance = model.encoder(x)
    assert mean.shape == (3, 6)
    assert log_variance.shape == (3, 6)
    assert model.decoder(mean).shape == (3, 3, 16, 16)


def test_decoder_log_likelihood_closed_form():
    decoder = anchor_vae.ConvGaussianDecoder(4, image_size=8, pixel_variance=0.25)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    location = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    expected = torch.distributions.Normal(location, 0.5).log_prob(x).flatten(start_dim=1)
    assert torch.allclose(decoder.log_likelihood(x, location), expected, atol=1e-12)


def test_anchored_kl_weights():
    weights = anchor_vae.kl_weights(_tiny_config(strength=0.3))
    assert torch.allclose(weights, torch.tensor([0.7, 0.7, 1.0, 1.0, 1.0, 1.0]))


def test_objective_weights_only_anchored():
    torch.manual_seed(0)
    config = _tiny_config()
    model = anchor_vae.build_model(config).double()
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
    terms = anchor_vae.objective(config)(model, x, torch.Generator().manual_seed(0))
    plain = anchor_vae.objective(config.baseline())(model, x, torch.Generator().manual_seed(0))
    kl = terms.kl_per_latent.mean(dim=0)
    assert torch.allclose((plain.weighted_kl - terms.weighted_kl).mean(), 0.5 * kl[:2].sum(), atol=1e-10)


def test_baseline_is_plain_vae():
    baseline = _tiny_config().baseline()
    assert baseline.strength == 0.0
    assert torch.all(anchor_vae.kl_weights(baseline) == 1.0)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(strength=1.0), "strength"),
        (dict(strength=-0.1), "strength"),
        (dict(anchored=(0, 6)), "anchored"),
        (dict(anchored=(1, 1)), "repeats"),
        (dict(pixel_variance=0.0), "pixel_variance"),
    ],
)
def test_config_rejects_invalid_values(changes, message):
    with pytest.raises(ConfigurationError, match=message):
        _tiny_config(**changes)


def test_encoder_rejects_wrong_image_size():
    model = anchor_vae.build_model(_tiny_config())
    with pytest.raises(ConfigurationError, match=r"\(batch, 3, 16, 16\)"):
        model.encoder(torch.rand(2, 3, 32, 32))


def test_image_size_must_divide_by_eight():
    with pytest.raises(ConfigurationError, match="multiple of 8"):
        anchor_vae.ConvEncoder(4, image_size=20)


def test_train_pair_resumes_from_checkpoints(tmp_path):
    config = _tiny_config()
    images = torch.rand(16, 3, 16, 16)
    first = anchor_vae.train_pair(config, images, checkpoint_dir=tmp_path, progress=False)
    second = anchor_vae.train_pair(config, images, checkpoint_dir=tmp_path, progress=False)
    assert second[2].loaded_from_checkpoint
    assert second[3].loaded_from_checkpoint
    for before, after in zip(first[0].state_dict().values(), second[0].state_dict().values()):
        assert torch.equal(before, after)


def test_traversal_sets_one_latent():
    model = anchor_vae.build_model(_tiny_config())
    starts = torch.zeros(2, 6)
    values = torch.linspace(-3, 3, 5)
    grid = anchor_vae.traversal(model, starts, 1, values)
    assert grid.shape == (2, 5, 3, 16, 16)
    assert torch.allclose(grid[0, 2], anchor_vae.decode(model, torch.zeros(1, 6))[0])


def test_top_fraction_counts_anchored():
    information = np.array([3.0, 0.1, 2.5, 0.2, 2.0, 1.0])
    assert anchor_vae.top_fraction(information, (0, 1)) == 0.5
    assert anchor_vae.top_fraction(information, (0, 2)) == 1.0
    assert math.isclose(anchor_vae.top_fraction(information, (3, 5)), 0.0)
