"""CorEx = VAE on binarised MNIST: the identity of eq. 12, checked numerically, and the TC bound it gives.

With a Bernoulli decoder and r(z_j) = N(0, 1), the CorEx bound of eq. 10 is
sum_i H(x_i) + ELBO. Because sum_i H(x_i) does not depend on the parameters, training the CorEx
bound and training the VAE follow the same trajectory, and the trained ELBO turns into a lower
bound on the total correlation of the data:

    TC(x) >= sum_i H(x_i) + E_x ELBO(x).

For binary pixels H(x_i) is the binary entropy of the pixel's empirical frequency.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from corex_edu.errors import ConfigurationError
from corex_edu.models import BernoulliDecoder, CorExAutoencoder, GaussianEncoder
from corex_edu.objectives import CorExBound, bernoulli_marginal_entropies, corex_bound, vae_elbo
from corex_edu.training import TrainConfig, TrainHistory, fit


@dataclass(frozen=True)
class MnistVAEConfig:
    """The binarised-MNIST VAE of notebook 02; every field is part of the checkpoint fingerprint."""

    latents: int = 32  # enough for a good ELBO on MNIST, small enough to train in minutes on a CPU
    hidden: tuple[int, ...] = (512, 256)  # encoder widths; the decoder mirrors them
    train_images: int | None = None  # None uses all 60,000 training images
    threshold: float = 0.5  # a pixel is 1 when its intensity exceeds this
    trajectory_steps: int = 30  # optimisation steps compared between the CorEx and VAE objectives
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=128, learning_rate=1e-3))

    def __post_init__(self) -> None:
        if self.train_images is not None and self.train_images < self.train.batch_size:
            raise ConfigurationError(f"train_images={self.train_images} is smaller than one batch ({self.train.batch_size})")
        if self.trajectory_steps < 1:
            raise ConfigurationError(f"trajectory_steps must be positive, got {self.trajectory_steps}")


PROFILES = {
    "quick": MnistVAEConfig(train_images=10_000, trajectory_steps=10, train=TrainConfig(epochs=3, batch_size=128)),
    "standard": MnistVAEConfig(),
    "paper": MnistVAEConfig(train=TrainConfig(epochs=100, batch_size=128)),
}


def build_bernoulli_vae(config: MnistVAEConfig, input_dim: int = 784) -> CorExAutoencoder:
    """Return the VAE of ``config``: Gaussian MLP encoder, Bernoulli MLP decoder, r = N(0, I)."""
    encoder = GaussianEncoder(input_dim, config.latents, hidden=config.hidden)
    decoder = BernoulliDecoder(config.latents, input_dim, hidden=tuple(reversed(config.hidden)))
    return CorExAutoencoder(encoder, decoder)


def corex_objective(marginal_entropy_sum: float):
    """Return the training objective (model, batch, generator) -> CorExBound used by :func:`corex_edu.training.fit`."""

    def objective(model: CorExAutoencoder, batch: torch.Tensor, generator: torch.Generator) -> CorExBound:
        return corex_bound(model, batch, marginal_entropy_sum, generator=generator)

    return objective


@dataclass(frozen=True)
class IdentityCheck:
    """Per-row comparison of the CorEx bound with sum_i H(x_i) + ELBO, in nats."""

    bound: np.ndarray
    entropy_plus_elbo: np.ndarray
    max_abs_error: float
    max_gradient_difference: float  # max |d(-bound)/d theta - d(-(H + ELBO))/d theta| over all parameters


def identity_check(model: CorExAutoencoder, batch: torch.Tensor, marginal_entropy_sum: float, dtype: torch.dtype = torch.float64, seed: int = 0) -> IdentityCheck:
    """Compute both objectives on ``batch`` with the same noise and compare values and gradients.

    The model is copied and cast to ``dtype``. In float64 the two agree to rounding error
    (about 1e-13 nats); in float32 to about 1e-5 nats on values of a few hundred nats.
    """
    twin = copy.deepcopy(model).to(dtype)
    x = batch.to(dtype)

    twin.zero_grad()
    terms = corex_bound(twin, x, marginal_entropy_sum, generator=torch.Generator().manual_seed(seed))
    terms.loss().backward()
    corex_gradients = [parameter.grad.clone() for parameter in twin.parameters() if parameter.requires_grad]

    twin.zero_grad()
    elbo = vae_elbo(twin, x, generator=torch.Generator().manual_seed(seed))
    (-(marginal_entropy_sum + elbo).mean()).backward()
    vae_gradients = [parameter.grad.clone() for parameter in twin.parameters() if parameter.requires_grad]

    bound = terms.bound.detach().cpu().numpy()
    reference = (marginal_entropy_sum + elbo).detach().cpu().numpy()
    gradient_difference = max(float((a - b).abs().max()) for a, b in zip(corex_gradients, vae_gradients))
    return IdentityCheck(bound, reference, float(np.max(np.abs(bound - reference))), gradient_difference)


def trajectories(config: MnistVAEConfig, data: torch.Tensor, marginal_entropy_sum: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train two models from the same seed for ``config.trajectory_steps`` steps, one per objective.

    Returns the per-step losses: -bound for CorEx, and -(sum_i H(x_i) + ELBO) for the VAE.
    """
    losses = []
    for use_corex in (True, False):
        torch.manual_seed(seed)
        model = build_bernoulli_vae(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(seed))
        trace = []
        for step in range(config.trajectory_steps):
            index = order[(step * config.train.batch_size) % data.shape[0] :][: config.train.batch_size]
            batch = data[index]
            if use_corex:
                loss = corex_bound(model, batch, marginal_entropy_sum, generator=generator).loss()
            else:
                loss = -(marginal_entropy_sum + vae_elbo(model, batch, generator=generator)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trace.append(float(loss.detach()))
        losses.append(np.array(trace))
    return losses[0], losses[1]


def marginal_entropy_sum(binary_images: torch.Tensor) -> float:
    """Return sum_i H(x_i) in nats for binary images (see :func:`bernoulli_marginal_entropies`)."""
    return float(np.sum(bernoulli_marginal_entropies(binary_images)))


def train(
    config: MnistVAEConfig,
    data: torch.Tensor,
    entropy_sum: float,
    device: torch.device | str = "cpu",
    checkpoint_path: str | None = None,
    progress: bool | None = None,
) -> tuple[CorExAutoencoder, TrainHistory]:
    """Train the VAE by maximising the CorEx bound; load or resume from ``checkpoint_path``."""
    torch.manual_seed(config.train.seed)
    model = build_bernoulli_vae(config, input_dim=data.shape[1])
    history = fit(
        model,
        data,
        config.train,
        corex_objective(entropy_sum),
        device=device,
        checkpoint_path=checkpoint_path,
        checkpoint_config=config,
        progress=progress,
        description="CorEx / VAE on binarised MNIST",
    )
    return model.cpu(), history


def standard_error(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
