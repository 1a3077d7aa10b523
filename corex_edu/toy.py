"""Linear CorEx on a Gaussian factor model, where every term of the bound has a closed form.

The data are x = W s + e (see :class:`corex_edu.gaussian.FactorModel`). The model is a linear
Gaussian encoder with one variance per latent, a linear Gaussian decoder and r(z_j) = N(0, 1):
a linear VAE. Because (x, z) is then jointly Gaussian, the population value of the bound
(eq. 10) is exact given the parameters, so "TC(x) - bound" measures the optimisation gap
with no sampling error:

    bound <= L = TC(x) - TC(x | z) - TC(z) <= TC(x).

With m >= k latents the gap can close (sampling z from the factors' posterior makes
TC(x | z) = 0 and TC(z) = 0); with m < k it cannot.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from corex_edu import gaussian
from corex_edu.errors import ConfigurationError
from corex_edu.models import CorExAutoencoder, GaussianDecoder, GaussianEncoder, GaussianPrior
from corex_edu.objectives import CorExBound, corex_bound
from corex_edu.training import TrainConfig, TrainHistory, fit

LOG_2_PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ToyConfig:
    """One linear CorEx fit on a factor model; every field is part of the checkpoint fingerprint."""

    observed: int = 12  # d: enough variables per factor that TC(x) is a few nats
    factors: int = 3  # k: the true number of independent causes
    noise_variance: float = 1.0  # Var(e_i); loadings are U(1, 2), so signal dominates noise
    latents: int = 3  # m: the fit reaches TC(x) only when m >= k
    train_samples: int = 20_000  # finite-sample overfitting is about (#parameters / N) nats
    model_seed: int = 0  # seed of the factor model's loadings
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, batch_size=500, learning_rate=1e-2, cosine_decay=True))

    def __post_init__(self) -> None:
        if self.latents < 1:
            raise ConfigurationError(f"latents must be positive, got {self.latents}")
        if self.train_samples < 2:
            raise ConfigurationError(f"train_samples must be at least 2, got {self.train_samples}")


def factor_model(config: ToyConfig) -> gaussian.FactorModel:
    """Return the factor model that ``config`` describes."""
    return gaussian.FactorModel.random(config.observed, config.factors, config.noise_variance, seed=config.model_seed)


def build_linear_corex(observed: int, latents: int) -> CorExAutoencoder:
    """Return a linear VAE: z = A x + b + noise, q(x | z) = N(C z + d, diag(v)), r(z) = N(0, I)."""
    encoder = GaussianEncoder(observed, latents, hidden=(), variance="global")
    decoder = GaussianDecoder(latents, observed, hidden=())
    return CorExAutoencoder(encoder, decoder, GaussianPrior(latents, learnable=False))


@dataclass(frozen=True)
class PopulationBound:
    """The CorEx bound's terms under the true data distribution, in nats."""

    marginal_entropy_sum: float
    reconstruction: float
    kl: float

    @property
    def bound(self) -> float:
        return self.marginal_entropy_sum + self.reconstruction - self.kl


def _linear_parameters(model: CorExAutoencoder) -> dict[str, np.ndarray]:
    encoder, decoder, prior = model.encoder, model.decoder, model.prior
    if encoder.variance != "global" or len(encoder.body) or len(decoder.body):
        raise ConfigurationError("the closed form needs a linear encoder with variance='global' and a linear Gaussian decoder")
    as_numpy = lambda tensor: tensor.detach().double().cpu().numpy()  # noqa: E731
    return {
        "A": as_numpy(encoder.mean.weight),
        "b": as_numpy(encoder.mean.bias),
        "encoder_log_variance": as_numpy(encoder.log_variance_parameter),
        "C": as_numpy(decoder.location.weight),
        "d": as_numpy(decoder.location.bias),
        "decoder_log_variance": as_numpy(decoder.log_variance),
        "prior_loc": as_numpy(prior.loc),
        "prior_log_variance": as_numpy(prior.log_variance),
    }


def population_bound(model: CorExAutoencoder, data_covariance: np.ndarray) -> PopulationBound:
    """Return the exact bound of eq. 10 for zero-mean Gaussian data with the given covariance."""
    p = _linear_parameters(model)
    s_xx = np.asarray(data_covariance, dtype=np.float64)
    a, b, c, d = p["A"], p["b"], p["C"], p["d"]
    s_zx = a @ s_xx
    s_zz = a @ s_xx @ a.T + np.diag(np.exp(p["encoder_log_variance"]))

    # E (x_i - C_i z - d_i)^2 = Var(x_i) - 2 C_i Cov(z, x_i) + C_i Cov(z) C_i^T + (C_i E z + d_i)^2, with E z = b.
    squared_error = np.diag(s_xx) - 2.0 * np.einsum("ij,ji->i", c, s_zx) + np.einsum("ij,jk,ik->i", c, s_zz, c) + (c @ b + d) ** 2
    v = p["decoder_log_variance"]
    reconstruction = float(np.sum(-0.5 * (LOG_2_PI + v) - 0.5 * np.exp(-v) * squared_error))

    # E_x KL(N(A_j x + b_j, s_j^2) || N(m_j, t_j^2)) with E (A_j x + b_j - m_j)^2 = A_j S A_j^T + (b_j - m_j)^2.
    e, t, m = p["encoder_log_variance"], p["prior_log_variance"], p["prior_loc"]
    mean_square = np.einsum("jk,kl,jl->j", a, s_xx, a) + (b - m) ** 2
    kl = float(np.sum(0.5 * (np.exp(e - t) + mean_square * np.exp(-t) - 1.0 - (e - t))))

    return PopulationBound(float(np.sum(gaussian.marginal_entropies(s_xx))), reconstruction, kl)


def decomposition(model: CorExAutoencoder, data_covariance: np.ndarray) -> gaussian.LinearEncoderDecomposition:
    """Return TC(x), TC(x | z) and TC(z) for the model's encoder, exactly."""
    p = _linear_parameters(model)
    return gaussian.linear_encoder_decomposition(data_covariance, p["A"], np.exp(p["encoder_log_variance"]))


@dataclass
class ToyFit:
    """A trained linear CorEx model with its closed-form evaluation, in nats."""

    config: ToyConfig
    model: CorExAutoencoder
    history: TrainHistory
    tc_x: float
    population: PopulationBound
    terms: gaussian.LinearEncoderDecomposition

    @property
    def gap(self) -> float:
        """TC(x) minus the population bound: >= 0, and near 0 only when the fit explains all of TC(x)."""
        return self.tc_x - self.population.bound


def fit_toy(
    config: ToyConfig,
    device: torch.device | str = "cpu",
    checkpoint_path: str | None = None,
    progress: bool | None = None,
) -> ToyFit:
    """Train a linear CorEx model on samples of the config's factor model and evaluate it exactly."""
    truth = factor_model(config)
    covariance = truth.covariance
    marginal_entropy_sum = float(np.sum(gaussian.marginal_entropies(covariance)))
    samples = torch.as_tensor(truth.sample(config.train_samples, seed=config.model_seed + 1), dtype=torch.float32)

    torch.manual_seed(config.train.seed)
    model = build_linear_corex(config.observed, config.latents)

    def objective(model: CorExAutoencoder, batch: torch.Tensor, generator: torch.Generator) -> CorExBound:
        return corex_bound(model, batch, marginal_entropy_sum, generator=generator)

    def diagnostics(model: CorExAutoencoder) -> dict[str, float]:
        terms = decomposition(model, covariance)
        return {
            "population_bound": population_bound(model, covariance).bound,
            "tc_x_given_z": terms.tc_x_given_z,
            "tc_z": terms.tc_z,
            "corex_objective": terms.corex_objective,
        }

    history = fit(
        model,
        samples,
        config.train,
        objective,
        device=device,
        checkpoint_path=checkpoint_path,
        checkpoint_config=config,
        progress=progress,
        description=f"linear CorEx, m={config.latents}",
        on_epoch_end=diagnostics,
    )
    model.cpu()
    return ToyFit(config, model, history, truth.total_correlation(), population_bound(model, covariance), decomposition(model, covariance))


@dataclass(frozen=True)
class ToyProfile:
    """Sizes of notebook 01 for one profile."""

    fit: ToyConfig  # m >= k: the bound should reach TC(x)
    underfit: ToyConfig  # m < k: the bound must stay clearly below TC(x)
    sample_sizes: tuple[int, ...]  # N values of the estimator sweep
    estimator_seeds: int  # independent data sets per N
    held_out_samples: int  # fresh samples for the Monte Carlo estimate of the bound


_FIT = ToyConfig()
PROFILES = {
    # The fits take seconds, so the quick profile keeps them and shrinks only the estimator sweep.
    "quick": ToyProfile(_FIT, ToyConfig(latents=1), (100, 1_000, 5_000), 4, 20_000),
    "standard": ToyProfile(_FIT, ToyConfig(latents=1), (100, 300, 1_000, 3_000, 10_000), 10, 100_000),
    "paper": ToyProfile(
        ToyConfig(train_samples=100_000, train=TrainConfig(epochs=60, batch_size=2_000, learning_rate=1e-2, cosine_decay=True)),
        ToyConfig(latents=1, train_samples=100_000, train=TrainConfig(epochs=60, batch_size=2_000, learning_rate=1e-2, cosine_decay=True)),
        (100, 300, 1_000, 3_000, 10_000, 30_000),
        20,
        1_000_000,
    ),
}


def estimator_sweep(rho: float, sample_sizes: tuple[int, ...], seeds: int, k: int = 3) -> dict[str, np.ndarray]:
    """Estimate TC of the 2-D Gaussian with correlation ``rho`` at each N and seed, in nats.

    Returns arrays of shape (len(sample_sizes), seeds) for the KSG (kNN) and Gaussian plug-in estimators.
    """
    from corex_edu import estimators

    covariance = gaussian.correlated_pair(rho)
    knn = np.zeros((len(sample_sizes), seeds))
    plug_in = np.zeros_like(knn)
    for i, n in enumerate(sample_sizes):
        for seed in range(seeds):
            samples = np.random.default_rng(seed).multivariate_normal(np.zeros(2), covariance, size=n)
            knn[i, seed] = estimators.knn_total_correlation(samples, k=k)
            plug_in[i, seed] = estimators.gaussian_total_correlation(samples)
    return {f"KSG kNN (k={k})": knn, "Gaussian plug-in": plug_in}


@torch.no_grad()
def monte_carlo_bound(model: CorExAutoencoder, config: ToyConfig, samples: int, seed: int) -> tuple[float, float]:
    """Estimate the bound on fresh samples, returning (mean, standard error) in nats."""
    truth = factor_model(config)
    entropy_sum = float(np.sum(gaussian.marginal_entropies(truth.covariance)))
    x = torch.as_tensor(truth.sample(samples, seed=seed), dtype=torch.float64)
    twin = copy.deepcopy(model).double()  # float64 without changing the caller's model
    terms = corex_bound(twin, x, entropy_sum, generator=torch.Generator().manual_seed(seed))
    values = terms.bound.numpy()
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(samples))
