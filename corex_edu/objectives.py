"""The CorEx lower bound as named terms (eq. 10 and 12), in nats per data point.

For a factorised encoder p(z | x), any decoder q(x_i | z) and any reference marginals r(z_j):

    L(theta; x) >= sum_i H(x_i)  +  sum_i E ln q(x_i | z)  -  sum_j w_j E KL(p(z_j | x) || r(z_j))
                   ------------     --------------------     ------------------------------------
                   marginal_         reconstruction           weighted kl_per_latent
                   entropy_sum

Sign convention: every field is stored with the sign it has in the formula above, so
``reconstruction`` is <= 0 for a Bernoulli decoder and ``kl_per_latent`` is >= 0. The
training loss is ``-bound``. With all weights w_j = 1 and r = N(0, I), bound - marginal_entropy_sum
is exactly the VAE evidence lower bound (ELBO). AnchorVAE sets w_j = 1 - lambda on anchored
latents, so it is a weight vector here, not a new model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from corex_edu.errors import ConfigurationError
from corex_edu.models import CorExAutoencoder


@dataclass(frozen=True)
class CorExBound:
    """The terms of the CorEx bound for one batch, in nats; tensors keep their autograd graph."""

    marginal_entropy_sum: torch.Tensor  # scalar: sum_i H(x_i), constant in the parameters
    reconstruction: torch.Tensor  # (batch,): sum_i ln q(x_i | z), one Monte Carlo sample of z per row
    kl_per_latent: torch.Tensor  # (batch, m): KL(p(z_j | x) || r(z_j)), each >= 0
    kl_weights: torch.Tensor  # (m,): w_j, 1 for plain CorEx / VAE

    @property
    def weighted_kl(self) -> torch.Tensor:
        """Return sum_j w_j KL_j per row, shape (batch,)."""
        return (self.kl_per_latent * self.kl_weights).sum(dim=-1)

    @property
    def elbo(self) -> torch.Tensor:
        """Return the unweighted ELBO per row, reconstruction - sum_j KL_j, shape (batch,)."""
        return self.reconstruction - self.kl_per_latent.sum(dim=-1)

    @property
    def bound(self) -> torch.Tensor:
        """Return the CorEx lower bound per row, shape (batch,)."""
        return self.marginal_entropy_sum + self.reconstruction - self.weighted_kl

    def loss(self) -> torch.Tensor:
        """Return the training loss, -mean(bound), a scalar."""
        return -self.bound.mean()

    def summary(self) -> dict[str, float]:
        """Return the batch means of every term as floats, for logging."""
        bound = self.bound.detach()
        return {
            "bound": float(bound.mean()),
            "marginal_entropy_sum": float(self.marginal_entropy_sum),
            "reconstruction": float(self.reconstruction.detach().mean()),
            "kl": float(self.kl_per_latent.detach().sum(dim=-1).mean()),
            "weighted_kl": float(self.weighted_kl.detach().mean()),
            "elbo": float(self.elbo.detach().mean()),
        }


def kl_weight_vector(latent_dim: int, kl_weights: torch.Tensor | np.ndarray | list[float] | float | None = None) -> torch.Tensor:
    """Return a validated float tensor of per-latent KL weights (default all ones)."""
    if kl_weights is None:
        return torch.ones(latent_dim)
    weights = torch.as_tensor(kl_weights, dtype=torch.float32)
    if weights.ndim == 0:
        weights = weights.expand(latent_dim).clone()
    if weights.shape != (latent_dim,):
        raise ConfigurationError(f"kl_weights must have {latent_dim} entries (one per latent), got shape {tuple(weights.shape)}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ConfigurationError(f"kl_weights must be finite and non-negative, got {weights.tolist()}")
    return weights


def anchor_weights(latent_dim: int, anchored: list[int] | range, strength: float) -> torch.Tensor:
    """Return AnchorVAE's KL weights: 1 - strength on the anchored latents, 1 elsewhere (eq. 20-21)."""
    if not 0.0 <= strength <= 1.0:
        raise ConfigurationError(f"the anchor strength lambda must lie in [0, 1], got {strength}")
    weights = torch.ones(latent_dim)
    anchored = list(anchored)
    if any(not 0 <= index < latent_dim for index in anchored):
        raise ConfigurationError(f"anchored latents must be in [0, {latent_dim}), got {anchored}")
    weights[anchored] = 1.0 - strength
    return weights


def corex_bound(
    model: CorExAutoencoder,
    x: torch.Tensor,
    marginal_entropy_sum: float | torch.Tensor = 0.0,
    kl_weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> CorExBound:
    """Compute the CorEx bound of eq. 10 term by term for a batch ``x``.

    Args:
        marginal_entropy_sum: sum_i H(x_i) in nats (see :func:`bernoulli_marginal_entropies`);
            it does not depend on the parameters, so it changes the value but not the gradients.
        kl_weights: per-latent weights w_j; ``None`` means all ones (plain CorEx, the VAE).
        generator: source of the reparameterisation noise, for reproducible estimates.
    """
    mean, log_variance = model.encoder(x)
    z = model.sample_latent(mean, log_variance, generator=generator)
    reconstruction = model.decoder.log_likelihood(x, model.decoder(z)).sum(dim=-1)
    kl_per_latent = model.prior.kl_divergence(mean, log_variance)
    weights = kl_weight_vector(model.latent_dim, kl_weights).to(device=x.device, dtype=mean.dtype)
    return CorExBound(
        marginal_entropy_sum=torch.as_tensor(marginal_entropy_sum, dtype=mean.dtype, device=x.device),
        reconstruction=reconstruction,
        kl_per_latent=kl_per_latent,
        kl_weights=weights,
    )


def vae_elbo(model: CorExAutoencoder, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Compute the ELBO per row the way a textbook VAE does, for a Bernoulli decoder and r = N(0, I).

    This is a second, independent implementation (summed binary cross-entropy and the
    analytic KL -1/2 sum(1 + ln sigma^2 - mu^2 - sigma^2)), kept to check numerically that
    the CorEx bound equals sum_i H(x_i) + ELBO (eq. 12).
    """
    mean, log_variance = model.encoder(x)
    z = mean + torch.exp(0.5 * log_variance) * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    logits = model.decoder(z)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, x.flatten(start_dim=1), reduction="none").sum(dim=1)
    kl = -0.5 * torch.sum(1.0 + log_variance - mean.pow(2) - log_variance.exp(), dim=1)
    return -cross_entropy - kl


def bernoulli_marginal_entropies(data: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return H(x_i) in nats for every column of binary data, from the empirical frequencies.

    For binary x_i the plug-in entropy is the exact entropy of the empirical distribution.
    As an estimate of the population value, its bias is below 1/(2N) nats per column.
    """
    array = torch.as_tensor(data).flatten(start_dim=1).double()
    if not torch.all((array == 0) | (array == 1)):
        raise ConfigurationError("data must be binary (0 or 1); binarise it first, e.g. with corex_edu.data.mnist.binarize")
    p = array.mean(dim=0).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        entropies = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0))
    return entropies
