"""Encoders, decoders and the CorEx autoencoder that combines them.

The encoder is a factorised Gaussian p_theta(z | x) = prod_j N(mu_j(x), sigma_j^2(x)); the
decoder q_phi(x | z) = prod_i q_phi(x_i | z) is Bernoulli (binary data) or Gaussian. With an
empty ``hidden`` tuple both are linear, which the toy Gaussian experiments need because their
CorEx bound then has a closed form.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from corex_edu.errors import ConfigurationError

LOG_2_PI = math.log(2.0 * math.pi)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")


def multilayer_perceptron(input_dim: int, hidden: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Build Linear-activation blocks of the given widths (an empty ``hidden`` gives the identity)."""
    layers: list[nn.Module] = []
    width = input_dim
    for size in hidden:
        _check_positive("every hidden width", size)
        layers += [nn.Linear(width, size), activation()]
        width = size
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """Factorised Gaussian encoder returning (mean, log_variance), each of shape (batch, latent_dim).

    Args:
        variance: ``"per_input"`` predicts log sigma^2 from x (the usual VAE encoder);
            ``"global"`` learns one log sigma^2 per latent, shared by all x, so that a linear
            encoder keeps (x, z) jointly Gaussian.
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        hidden: Sequence[int] = (512, 512),
        variance: Literal["per_input", "global"] = "per_input",
    ) -> None:
        super().__init__()
        _check_positive("input_dim", input_dim)
        _check_positive("latent_dim", latent_dim)
        if variance not in ("per_input", "global"):
            raise ConfigurationError(f"variance must be 'per_input' or 'global', got {variance!r}")
        self.input_dim, self.latent_dim, self.variance = input_dim, latent_dim, variance
        self.body = multilayer_perceptron(input_dim, hidden)
        width = hidden[-1] if hidden else input_dim
        self.mean = nn.Linear(width, latent_dim)
        if variance == "per_input":
            self.log_variance = nn.Linear(width, latent_dim)
        else:
            self.log_variance_parameter = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x.flatten(start_dim=1))
        mean = self.mean(features)
        if self.variance == "per_input":
            log_variance = self.log_variance(features)
        else:
            log_variance = self.log_variance_parameter.expand_as(mean)
        return mean, log_variance


class BernoulliDecoder(nn.Module):
    """Decoder with q(x_i | z) = Bernoulli(sigmoid(logit_i(z))) for x in [0, 1]."""

    def __init__(self, latent_dim: int, output_dim: int, hidden: Sequence[int] = (512, 512)) -> None:
        super().__init__()
        _check_positive("latent_dim", latent_dim)
        _check_positive("output_dim", output_dim)
        self.body = multilayer_perceptron(latent_dim, hidden)
        self.logits = nn.Linear(hidden[-1] if hidden else latent_dim, output_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the logits, shape (batch, output_dim)."""
        return self.logits(self.body(z))

    def log_likelihood(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Return ln q(x_i | z) per dimension, shape (batch, output_dim), in nats."""
        return -F.binary_cross_entropy_with_logits(logits, x.flatten(start_dim=1), reduction="none")

    @torch.no_grad()
    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """Return E[x | z] = sigmoid(logits)."""
        return torch.sigmoid(self(z))


class GaussianDecoder(nn.Module):
    """Decoder with q(x_i | z) = N(m_i(z), v_i) and one learned variance v_i per output dimension."""

    def __init__(self, latent_dim: int, output_dim: int, hidden: Sequence[int] = (512, 512)) -> None:
        super().__init__()
        _check_positive("latent_dim", latent_dim)
        _check_positive("output_dim", output_dim)
        self.body = multilayer_perceptron(latent_dim, hidden)
        self.location = nn.Linear(hidden[-1] if hidden else latent_dim, output_dim)
        self.log_variance = nn.Parameter(torch.zeros(output_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return the means m(z), shape (batch, output_dim)."""
        return self.location(self.body(z))

    def log_likelihood(self, x: torch.Tensor, location: torch.Tensor) -> torch.Tensor:
        """Return ln q(x_i | z) per dimension, shape (batch, output_dim), in nats."""
        residual = x.flatten(start_dim=1) - location
        return -0.5 * (LOG_2_PI + self.log_variance + residual.square() * torch.exp(-self.log_variance))

    @torch.no_grad()
    def mean(self, z: torch.Tensor) -> torch.Tensor:
        return self(z)


class GaussianPrior(nn.Module):
    """The reference marginals r_alpha(z_j) = N(loc_j, scale_j^2) of eq. 9.

    ``learnable=False`` fixes r = N(0, I), the VAE prior; ``learnable=True`` fits loc and
    log scale^2, which makes the KL bound on I(z_j : x) tight when p(z_j) is Gaussian.
    """

    def __init__(self, latent_dim: int, learnable: bool = False) -> None:
        super().__init__()
        _check_positive("latent_dim", latent_dim)
        self.loc = nn.Parameter(torch.zeros(latent_dim), requires_grad=learnable)
        self.log_variance = nn.Parameter(torch.zeros(latent_dim), requires_grad=learnable)

    def kl_divergence(self, mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
        """Return KL(N(mean, e^log_variance) || r) per latent, shape (batch, latent_dim), in nats."""
        variance_ratio = torch.exp(log_variance - self.log_variance)
        squared_distance = (mean - self.loc).square() * torch.exp(-self.log_variance)
        return 0.5 * (variance_ratio + squared_distance - 1.0 - (log_variance - self.log_variance))


class CorExAutoencoder(nn.Module):
    """Encoder, decoder and reference marginals r(z_j) of one CorEx layer (equivalently, a VAE)."""

    def __init__(self, encoder: GaussianEncoder, decoder: BernoulliDecoder | GaussianDecoder, prior: GaussianPrior | None = None) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.prior = prior if prior is not None else GaussianPrior(encoder.latent_dim)
        if self.prior.loc.shape[0] != encoder.latent_dim:
            raise ConfigurationError(f"the prior has {self.prior.loc.shape[0]} latents but the encoder has {encoder.latent_dim}")

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    def sample_latent(self, mean: torch.Tensor, log_variance: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw z ~ p(z | x) with the reparameterisation z = mean + sigma * eps."""
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * log_variance) * noise

    @torch.no_grad()
    def encode_dataset(self, data: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the encoder's (mean, log_variance) for every row of ``data``, on the CPU."""
        device = next(self.parameters()).device
        means, log_variances = [], []
        for start in range(0, data.shape[0], batch_size):
            mean, log_variance = self.encoder(data[start : start + batch_size].to(device))
            means.append(mean.cpu())
            log_variances.append(log_variance.cpu())
        return torch.cat(means), torch.cat(log_variances)
