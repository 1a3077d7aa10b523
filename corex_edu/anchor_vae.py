"""AnchorVAE on CelebA: the CorEx bound with a smaller KL weight on a few anchored latents.

Adding lambda * I(z_a : x) for the anchored latents a to the CorEx objective (eq. 20-21) turns their
KL term's weight from 1 into 1 - lambda, so they are cheaper to use and end up carrying the most
information. With lambda = 0 the model is the plain VAE of the same network.

The encoder is three stride-2 convolutions (32, 64, 128 channels) and the decoder their mirror
image. The decoder is Gaussian with a fixed pixel variance, so the reconstruction term is a
scaled squared error in nats (see :class:`ConvGaussianDecoder`). Images are float
tensors (N, 3, H, W) in [0, 1] with H = W a multiple of 8.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from corex_edu.errors import ConfigurationError
from corex_edu.models import CorExAutoencoder, GaussianPrior
from corex_edu.objectives import CorExBound, anchor_weights, corex_bound
from corex_edu.training import TrainConfig, TrainHistory, fit, seed_everything

LOG_2_PI = math.log(2.0 * math.pi)
CHANNELS = (32, 64, 128)


class ConvEncoder(nn.Module):
    """Three 4x4 stride-2 convolutions with ReLU, then linear heads for the mean and log-variance."""

    def __init__(self, latent_dim: int, image_size: int = 64, channels: tuple[int, ...] = CHANNELS) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ConfigurationError(f"latent_dim must be a positive integer, got {latent_dim}")
        if image_size < 8 or image_size % 8:
            raise ConfigurationError(f"image_size must be a multiple of 8 and at least 8, got {image_size}")
        layers: list[nn.Module] = []
        previous = 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            previous = width
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.latent_dim, self.image_size = latent_dim, image_size
        features = previous * (image_size // 2 ** len(channels)) ** 2
        self.mean = nn.Linear(features, latent_dim)
        self.log_variance = nn.Linear(features, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise ConfigurationError(
                f"expected images of shape (batch, 3, {self.image_size}, {self.image_size}), got {tuple(x.shape)}"
            )
        features = self.body(x)
        return self.mean(features), self.log_variance(features)


class ConvGaussianDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder` with q(x_i | z) = N(m_i(z), pixel_variance) for every pixel value.

    With a fixed variance s^2 the log-likelihood is -(x - m)^2 / (2 s^2) - ln(2 pi s^2) / 2 per
    pixel, so maximising it minimises the squared error. s^2 sets how many nats one unit of
    squared error costs against the KL terms.
    """

    def __init__(self, latent_dim: int, image_size: int = 64, channels: tuple[int, ...] = CHANNELS, pixel_variance: float = 0.5) -> None:
        super().__init__()
        if not pixel_variance > 0.0:
            raise ConfigurationError(f"pixel_variance must be positive, got {pixel_variance}")
        self.start = image_size // 2 ** len(channels)
        self.channels = channels
        self.project = nn.Linear(latent_dim, channels[-1] * self.start**2)
        layers: list[nn.Module] = []
        widths = list(reversed(channels))
        for width, following in zip(widths, widths[1:] + [3]):
            layers += [nn.ReLU(), nn.ConvTranspose2d(width, following, kernel_size=4, stride=2, padding=1)]
        self.body = nn.Sequential(*layers)
        self.pixel_variance = pixel_variance

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the decoded pixel means m(z), shape (batch, 3, H, W), squashed into (0, 1)."""
        hidden = self.project(z).view(z.shape[0], self.channels[-1], self.start, self.start)
        return torch.sigmoid(self.body(hidden))

    def log_likelihood(self, x: torch.Tensor, location: torch.Tensor) -> torch.Tensor:
        """Return ln q(x_i | z) per pixel value, shape (batch, 3 * H * W), in nats."""
        residual = (x - location).flatten(start_dim=1)
        return -0.5 * (LOG_2_PI + math.log(self.pixel_variance) + residual.square() / self.pixel_variance)

    @torch.no_grad()
    def mean(self, z: torch.Tensor) -> torch.Tensor:
        return self(z)


@dataclass(frozen=True)
class AnchorVAEConfig:
    """One AnchorVAE run; every field is part of the checkpoint fingerprint."""

    latents: int = 128
    anchored: tuple[int, ...] = (0, 1, 2, 3, 4)
    strength: float = 0.5  # lambda: the anchored latents' KL weight is 1 - lambda
    image_size: int = 64
    pixel_variance: float = 0.5  # s^2 = 1/2 makes the reconstruction term the summed squared error, up to a constant
    train_images: int | None = None  # None uses the whole training split
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20, batch_size=64, learning_rate=1e-3))

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ConfigurationError(f"strength (lambda) must lie in [0, 1), got {self.strength}; 1 would remove the anchored KL terms")
        if any(not 0 <= index < self.latents for index in self.anchored):
            raise ConfigurationError(f"anchored={self.anchored} must be latent indices in [0, {self.latents})")
        if len(set(self.anchored)) != len(self.anchored):
            raise ConfigurationError(f"anchored={self.anchored} repeats an index")
        if not self.pixel_variance > 0.0:
            raise ConfigurationError(f"pixel_variance must be positive, got {self.pixel_variance}")

    def baseline(self) -> "AnchorVAEConfig":
        """Return the same network as a plain VAE (lambda = 0)."""
        return replace(self, strength=0.0)


PROFILES = {
    "quick": AnchorVAEConfig(latents=32, train_images=1_000, train=TrainConfig(epochs=2, batch_size=64, learning_rate=1e-3)),
    "standard": AnchorVAEConfig(latents=128, train=TrainConfig(epochs=20, batch_size=64, learning_rate=1e-3)),
    "paper": AnchorVAEConfig(latents=2048, train=TrainConfig(epochs=50, batch_size=64, learning_rate=1e-3)),
}


def build_model(config: AnchorVAEConfig) -> CorExAutoencoder:
    """Return the convolutional CorEx autoencoder of ``config`` with r = N(0, I)."""
    encoder = ConvEncoder(config.latents, config.image_size)
    decoder = ConvGaussianDecoder(config.latents, config.image_size, pixel_variance=config.pixel_variance)
    return CorExAutoencoder(encoder, decoder, GaussianPrior(config.latents))


def kl_weights(config: AnchorVAEConfig) -> torch.Tensor:
    """Return the per-latent KL weights: 1 - lambda on the anchored latents, 1 elsewhere."""
    return anchor_weights(config.latents, list(config.anchored), config.strength)


def objective(config: AnchorVAEConfig):
    """Return the training objective of ``config`` for :func:`corex_edu.training.fit`.

    The sum of marginal entropies of continuous pixels is a constant, so it is left out: the
    reported bound is the CorEx bound minus sum_i H(x_i).
    """
    weights = kl_weights(config)

    def compute(model: CorExAutoencoder, batch: torch.Tensor, generator: torch.Generator) -> CorExBound:
        return corex_bound(model, batch, 0.0, kl_weights=weights, generator=generator)

    return compute


def train_model(
    config: AnchorVAEConfig,
    images: torch.Tensor,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    name: str = "anchorvae",
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> tuple[CorExAutoencoder, TrainHistory]:
    """Train one model of ``config`` (or load its checkpoint ``<checkpoint_dir>/<name>-seed<seed>.pt``).

    Returns the model on the CPU in eval mode and its history.
    """
    if config.train_images is not None:
        images = images[: config.train_images]
    seed_everything(seed)
    model = build_model(config)
    history = fit(
        model, images, replace(config.train, seed=seed), objective(config), device=device,
        checkpoint_path=Path(checkpoint_dir) / f"{name}-seed{seed}.pt" if checkpoint_dir is not None else None,
        checkpoint_config=config, progress=progress, description=f"{name} (lambda={config.strength})",
    )
    return model.cpu().eval(), history


def train_pair(
    config: AnchorVAEConfig,
    images: torch.Tensor,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> tuple[CorExAutoencoder, CorExAutoencoder, TrainHistory, TrainHistory]:
    """Train the AnchorVAE of ``config`` and its plain-VAE baseline from the same seed.

    Returns (anchor model, VAE, anchor history, VAE history); the models are on the CPU in eval mode.
    """
    anchor_model, anchor_history = train_model(config, images, checkpoint_dir, "anchorvae", seed, device, progress)
    vae_model, vae_history = train_model(config.baseline(), images, checkpoint_dir, "vae", seed, device, progress)
    return anchor_model, vae_model, anchor_history, vae_history


@torch.no_grad()
def decode(model: CorExAutoencoder, z: torch.Tensor) -> torch.Tensor:
    """Return decoded images (B, 3, H, W) in [0, 1] for latent codes z (B, m)."""
    model.eval()
    return model.decoder(z)


@torch.no_grad()
def traversal(model: CorExAutoencoder, starts: torch.Tensor, latent: int, values: torch.Tensor) -> torch.Tensor:
    """Decode every start code with latent ``latent`` set to each value: shape (rows, len(values), 3, H, W)."""
    codes = starts[:, None, :].repeat(1, values.numel(), 1)
    codes[:, :, latent] = values[None, :]
    decoded = decode(model, codes.flatten(end_dim=1))
    return decoded.view(starts.shape[0], values.numel(), *decoded.shape[1:])


def top_fraction(information: np.ndarray, anchored: tuple[int, ...]) -> float:
    """Return the share of the len(anchored) most informative latents that are anchored."""
    top = np.argsort(np.asarray(information))[::-1][: len(anchored)]
    return float(len(set(top.tolist()) & set(anchored)) / len(anchored))
