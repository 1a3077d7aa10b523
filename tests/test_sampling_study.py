import numpy as np
import pytest
import torch

from corex_edu import mnist_vae, sampling_study
from corex_edu.errors import ConfigurationError
from corex_edu.sampling import PriorSampler


def test_profiles_use_plain_vae():
    for config in sampling_study.PROFILES.values():
        assert config.celeba.strength == 0.0
        assert config.mnist.latents == 128


def test_config_rejects_anchored_model():
    anchored = sampling_study.PROFILES["quick"].celeba.__class__(latents=8, strength=0.5)
    with pytest.raises(ConfigurationError, match="plain VAE"):
        sampling_study.SamplingStudyConfig(mnist=sampling_study.PROFILES["quick"].mnist, celeba=anchored)


def test_config_rejects_single_draw():
    base = sampling_study.PROFILES["quick"]
    with pytest.raises(ConfigurationError, match="draws"):
        sampling_study.SamplingStudyConfig(mnist=base.mnist, celeba=base.celeba, draws=1)


def test_mnist_images_are_binary():
    model = mnist_vae.build_bernoulli_vae(mnist_vae.MnistVAEConfig(latents=4, hidden=(8,)))
    images = sampling_study.mnist_images(model, torch.zeros(5, 4), seed=0)
    assert images.shape == (5, 1, 28, 28)
    assert set(torch.unique(images).tolist()) <= {0.0, 1.0}


def test_draws_are_independent_and_repeatable():
    sampler = PriorSampler(3)
    decode = lambda z, seed: z
    first = sampling_study.draw_image_sets(sampler, decode, 4, 2, seed=1)
    again = sampling_study.draw_image_sets(sampler, decode, 4, 2, seed=1)
    assert torch.equal(first[0], again[0])
    assert not torch.equal(first[0], first[1])


def test_fraction_above_threshold():
    assert sampling_study.fraction_above(np.array([0.5, 2.5, 3.0, 2.0]), 2.0) == 0.5
    with pytest.raises(ConfigurationError, match="empty"):
        sampling_study.fraction_above(np.array([]), 2.0)
