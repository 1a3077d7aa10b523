"""Latent samplers for generating images from a trained Gaussian encoder-decoder.

With the tight choice r(z_j) = p_theta(z_j) = E_x p_theta(z_j | x) in the CorEx bound, the
natural generator draws every latent independently from its aggregate-posterior marginal
instead of from N(0, 1). Three samplers share one interface (:class:`LatentSampler`):

* :class:`PriorSampler`: z ~ N(0, I), the VAE prior.
* :class:`AggregatePosteriorSampler`: z ~ prod_j p(z_j) with p(z_j) = 1/N sum_n N(mu_nj, sigma_nj^2).
  Each dimension of each sample picks its own data index, so the dimensions are independent.
* :class:`GaussianMixtureSampler`: a Gaussian mixture fitted to the posterior means mu_n. Unlike
  the factorised sampler it keeps the dependence between latents.

:func:`aggregate_marginal_mean` and :func:`aggregate_marginal_variance` give the exact first two
moments of every p(z_j).
"""

from __future__ import annotations

import abc
from typing import Literal

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from corex_edu.errors import ConfigurationError

# Bounds the (samples x latents) index block of AggregatePosteriorSampler to 32 MiB of int64.
_INDEX_BLOCK_ELEMENTS = 2**22

SeedOrGenerator = int | torch.Generator | None


def _as_float64(name: str, values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ConfigurationError(f"{name} must have shape (N, m), got shape {array.shape}; pass the encoder outputs of N data points")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ConfigurationError(f"{name} must have at least one row and one column, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ConfigurationError(f"{name} contains {bad} NaN or infinite values; check the encoder and its input before sampling")
    return array


def _encoder_outputs(mean: torch.Tensor | np.ndarray, log_variance: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = _as_float64("mean", mean)
    log_var = _as_float64("log_variance", log_variance)
    if mu.shape != log_var.shape:
        raise ConfigurationError(
            f"mean and log_variance must have the same shape (N, m), got {mu.shape} and {log_var.shape}; "
            "pass both outputs of the same encoder call"
        )
    return mu, log_var


def aggregate_marginal_mean(mean: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return the mean of every aggregate marginal p(z_j), that is the column means of ``mean``, shape (m,)."""
    return _as_float64("mean", mean).mean(axis=0)


def aggregate_marginal_variance(mean: torch.Tensor | np.ndarray, log_variance: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return the exact variance of every aggregate marginal p(z_j) = 1/N sum_n N(mu_nj, sigma_nj^2), shape (m,).

    By the law of total variance, Var[z_j] = mean_n sigma_nj^2 + Var_n mu_nj. The variance of
    the means is the population one (divided by N) because the mixture weights are exactly 1/N.

    Args:
        mean, log_variance: encoder outputs over N data points, shape (N, m), numpy or torch.
    """
    mu, log_var = _encoder_outputs(mean, log_variance)
    return np.exp(log_var).mean(axis=0) + mu.var(axis=0, ddof=0)


def _generator(seed: SeedOrGenerator) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return torch.Generator().manual_seed(int(seed))
    raise ConfigurationError(f"seed must be an int, a CPU torch.Generator or None, got {seed!r}")


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class LatentSampler(abc.ABC):
    """A distribution over latent codes z of width ``latent_dim``, sampled on the CPU in float32."""

    name: str
    latent_dim: int

    @abc.abstractmethod
    def _draw(self, num: int, generator: torch.Generator | None) -> torch.Tensor: ...

    def sample(self, num: int, seed: SeedOrGenerator = None) -> torch.Tensor:
        """Draw ``num`` codes, shape (num, latent_dim), float32 on the CPU.

        Args:
            seed: an int for a fresh seeded generator, a CPU ``torch.Generator`` to continue,
                or ``None`` for torch's global generator.
        """
        return self._draw(_check_count("num", num), _generator(seed))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, latent_dim={self.latent_dim})"


class PriorSampler(LatentSampler):
    """The standard normal prior N(0, I)."""

    def __init__(self, latent_dim: int) -> None:
        self.latent_dim = _check_count("latent_dim", latent_dim)
        self.name = "prior N(0, I)"

    def _draw(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(num, self.latent_dim, generator=generator)


class AggregatePosteriorSampler(LatentSampler):
    """The factorised aggregate posterior prod_j p(z_j), with p(z_j) = 1/N sum_n N(mu_nj, sigma_nj^2).

    Every entry (sample a, latent j) draws its own index n uniformly from the N data points and
    then z_aj ~ N(mu_nj, sigma_nj^2). Latents are therefore independent even when the posterior
    means are correlated across latents.

    Args:
        mean, log_variance: encoder outputs over N data points, shape (N, m), numpy or torch.
            They are stored as float32 CPU tensors.
    """

    def __init__(self, mean: torch.Tensor | np.ndarray, log_variance: torch.Tensor | np.ndarray) -> None:
        mu, log_var = _encoder_outputs(mean, log_variance)
        self.mean = torch.from_numpy(mu).float()
        self.standard_deviation = torch.from_numpy(np.exp(0.5 * log_var)).float()
        self.num_points, self.latent_dim = mu.shape
        self.name = "aggregate posterior (factorised)"

    def _draw(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        rows_per_block = max(1, _INDEX_BLOCK_ELEMENTS // self.latent_dim)
        blocks = []
        for start in range(0, num, rows_per_block):
            rows = min(rows_per_block, num - start)
            index = torch.randint(self.num_points, (rows, self.latent_dim), generator=generator)
            # gather along dim 0 picks mean[index[a, j], j], so every (sample, latent) entry gets its own data point.
            mu = torch.gather(self.mean, 0, index)
            sigma = torch.gather(self.standard_deviation, 0, index)
            blocks.append(mu + sigma * torch.randn(rows, self.latent_dim, generator=generator))
        return torch.cat(blocks)


class GaussianMixtureSampler(LatentSampler):
    """A Gaussian mixture fitted to the posterior means mu_n, sampled as a joint distribution over z.

    The fit is scikit-learn's :class:`~sklearn.mixture.GaussianMixture` (EM with k-means
    initialisation) seeded with ``seed``. Sampling uses torch's generator, so a seed gives the
    same codes on every run.

    NOTE: the fit uses only the means mu_n and ignores the encoder variances sigma_n^2, so its
    samples lie closer to the means than codes drawn from p(z | x) do.

    Args:
        mean: posterior means over N data points, shape (N, m), numpy or torch.
        components: number of mixture components K, at most N.
        covariance: ``"full"`` (one m x m covariance per component) or ``"diagonal"``.
        seed: seed of the k-means initialisation and EM.
        regularisation: added to every covariance diagonal (scikit-learn's ``reg_covar``) so
            that a component on a few points stays positive definite.
        max_iterations: EM iterations at most.
    """

    def __init__(
        self,
        mean: torch.Tensor | np.ndarray,
        components: int = 10,
        covariance: Literal["full", "diagonal"] = "full",
        seed: int = 0,
        regularisation: float = 1e-6,
        max_iterations: int = 200,
    ) -> None:
        means = _as_float64("mean", mean)
        components = _check_count("components", components)
        if components > means.shape[0]:
            raise ConfigurationError(f"components={components} exceeds the {means.shape[0]} posterior means; use at most {means.shape[0]} components")
        if covariance not in ("full", "diagonal"):
            raise ConfigurationError(f"covariance must be 'full' or 'diagonal', got {covariance!r}")
        if not (np.isfinite(regularisation) and regularisation >= 0):
            raise ConfigurationError(f"regularisation must be a non-negative number, got {regularisation!r}")
        self.latent_dim = means.shape[1]
        self.components = components
        self.covariance = covariance
        self.name = f"Gaussian mixture on posterior means (K={components}, {covariance} covariance)"

        mixture = GaussianMixture(
            n_components=components,
            covariance_type="full" if covariance == "full" else "diag",
            reg_covar=regularisation,
            max_iter=_check_count("max_iterations", max_iterations),
            random_state=seed,
        )
        mixture.fit(means)
        self.converged = bool(mixture.converged_)
        self.weights = torch.from_numpy(mixture.weights_).double()
        self.component_means = torch.from_numpy(mixture.means_).double()
        if covariance == "full":
            self.component_covariances = torch.from_numpy(mixture.covariances_).double()
        else:
            self.component_covariances = torch.diag_embed(torch.from_numpy(mixture.covariances_).double())
        self._cholesky = torch.linalg.cholesky(self.component_covariances)

    def _draw(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        assignment = torch.multinomial(self.weights, num, replacement=True, generator=generator)
        noise = torch.randn(num, self.latent_dim, generator=generator, dtype=torch.float64)
        codes = torch.empty(num, self.latent_dim, dtype=torch.float64)
        for component in range(self.components):
            rows = assignment == component
            codes[rows] = self.component_means[component] + noise[rows] @ self._cholesky[component].T
        return codes.float()
