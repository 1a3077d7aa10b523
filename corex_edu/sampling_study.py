"""Notebook 05's experiment: sample latents from N(0, I) or from the aggregate posterior, and measure the images.

The tight reference marginal of the CorEx bound is r(z_j) = p_theta(z_j), the aggregate
posterior. A VAE trained with r = N(0, 1) does not make its aggregate marginals standard normal,
so decoding codes drawn from N(0, I) feeds the decoder inputs it rarely saw in training. This
module trains the two VAEs (binarised MNIST, CelebA), draws images from each sampler, and scores
them against held-out real images in the feature space of a classifier trained on real images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from corex_edu import anchor_vae, mnist_vae
from corex_edu.errors import ConfigurationError
from corex_edu.models import CorExAutoencoder
from corex_edu.sampling import LatentSampler
from corex_edu.training import TrainConfig


@dataclass(frozen=True)
class SamplingStudyConfig:
    """The two VAEs, the feature classifiers and the sampling protocol of notebook 05."""

    mnist: mnist_vae.MnistVAEConfig
    celeba: anchor_vae.AnchorVAEConfig
    mnist_classifier_epochs: int = 2
    celeba_classifier_epochs: int = 5
    classifier_images: int | None = None  # None trains the MNIST classifier on all 60,000 images
    draws: int = 5  # independent sample sets per sampler
    evaluation_images: int | None = None  # held-out real images (and samples per draw); None uses all
    mixture_components: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.celeba.strength != 0.0:
            raise ConfigurationError(f"the CelebA model must be a plain VAE (strength 0), got strength={self.celeba.strength}")
        if self.draws < 2:
            raise ConfigurationError(f"draws must be at least 2 to report a standard deviation, got {self.draws}")
        if self.evaluation_images is not None and self.evaluation_images < 10:
            raise ConfigurationError(f"evaluation_images must be at least 10 (or None for all), got {self.evaluation_images}")
        if self.mixture_components < 1:
            raise ConfigurationError(f"mixture_components must be positive, got {self.mixture_components}")


PROFILES = {
    "quick": SamplingStudyConfig(
        mnist=mnist_vae.MnistVAEConfig(latents=128, train_images=10_000, trajectory_steps=1, train=TrainConfig(epochs=3, batch_size=128)),
        celeba=anchor_vae.PROFILES["quick"].baseline(),
        mnist_classifier_epochs=1,
        celeba_classifier_epochs=1,
        classifier_images=10_000,
        draws=2,
        evaluation_images=2_000,
    ),
    "standard": SamplingStudyConfig(
        mnist=mnist_vae.MnistVAEConfig(latents=128, trajectory_steps=1, train=TrainConfig(epochs=20, batch_size=128)),
        celeba=anchor_vae.PROFILES["standard"].baseline(),
    ),
    "paper": SamplingStudyConfig(
        mnist=mnist_vae.MnistVAEConfig(latents=128, trajectory_steps=1, train=TrainConfig(epochs=100, batch_size=128)),
        celeba=anchor_vae.AnchorVAEConfig(latents=128, strength=0.0, train=anchor_vae.PROFILES["paper"].train),
        celeba_classifier_epochs=10,
    ),
}


def train_celeba_vae(
    config: anchor_vae.AnchorVAEConfig,
    images: torch.Tensor,
    checkpoint_dir: str | os.PathLike[str] | None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[CorExAutoencoder, object]:
    """Train (or load) the plain convolutional VAE; it shares notebook 04's checkpoint name, so a finished notebook 04 run is reused."""
    return anchor_vae.train_model(config, images, checkpoint_dir, name="vae", seed=seed, device=device)


@torch.no_grad()
def mnist_images(model: CorExAutoencoder, z: torch.Tensor, seed: int) -> torch.Tensor:
    """Return binary images x ~ p(x | z) of shape (B, 1, 28, 28), the same kind as binarised MNIST."""
    model.eval()
    probabilities = model.decoder.mean(z)
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(probabilities, generator=generator).view(-1, 1, 28, 28)


@torch.no_grad()
def celeba_images(model: CorExAutoencoder, z: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Return the decoded means (B, 3, 64, 64); adding the decoder's pixel noise would only add white noise."""
    model.eval()
    return torch.cat([model.decoder(z[start : start + batch_size]) for start in range(0, z.shape[0], batch_size)])


def draw_image_sets(sampler: LatentSampler, decode, num: int, draws: int, seed: int) -> list[torch.Tensor]:
    """Return ``draws`` independent image sets of ``num`` images from ``sampler`` decoded by ``decode(z, draw_seed)``."""
    sets = []
    for draw in range(draws):
        draw_seed = seed * 1000 + draw
        sets.append(decode(sampler.sample(num, seed=draw_seed), draw_seed))
    return sets


def fraction_above(values: np.ndarray, threshold: float) -> float:
    """Return the share of entries of ``values`` above ``threshold``."""
    values = np.asarray(values)
    if values.size == 0:
        raise ConfigurationError("values is empty")
    return float((values > threshold).mean())
