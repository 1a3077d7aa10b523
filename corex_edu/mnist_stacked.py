"""Stacked CorEx on binarised MNIST: x -> z1 (64 Gaussian latents) -> z2 (one 10-way categorical).

Training follows the layer-wise logic of CorEx and then fine-tunes the whole stack:

1. Layer 1 alone: the CorEx bound of x with r(z1) = N(0, I), which is a VAE.
2. Layer 2 on the fixed layer-1 codes: a Gaussian mixture with ``classes`` components is fitted by
   EM to the encoder means of the active z1 dimensions (several restarts), the class-conditionals
   p(z1 | z2 = k) are set to the moments of q(z1 | x) under the mixture's responsibilities, and
   q(z2 | z1) is fitted to those responsibilities. This is the maximum of layer 2's own bound for
   a fixed layer 1, found with EM instead of gradient steps because gradient steps from a random
   start collapse onto a few classes.
3. The whole stacked bound, jointly, which moves the z1 codes towards the class-conditionals.

Every stage checkpoints atomically, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.mixture import GaussianMixture

from corex_edu.errors import ConfigurationError
from corex_edu.estimators import aggregate_posterior_mi
from corex_edu.stacked import CategoricalLayer, GaussianLayer, StackedBound, StackedCorEx
from corex_edu.training import TrainConfig, TrainHistory, fit, seed_everything


@dataclass(frozen=True)
class StackedConfig:
    """One stacked CorEx run on MNIST; every field is part of the checkpoint fingerprints."""

    latents: int = 64
    encoder_hidden: tuple[int, ...] = (512, 512)
    classes: int = 10
    top_hidden: tuple[int, ...] = (32, 32, 16, 16)
    covariance: str = "full"
    threshold: float = 0.5  # a pixel is 1 when its intensity exceeds this
    train_images: int | None = None  # None uses all 60,000 training images
    active_variance: float = 0.5  # a z1 dimension is active when its mean posterior variance is below this
    mixture_restarts: int = 3
    layer1: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=128, learning_rate=1e-3))
    joint: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=128, learning_rate=1e-3))

    def __post_init__(self) -> None:
        if self.covariance not in ("diagonal", "full"):
            raise ConfigurationError(f"covariance={self.covariance!r}: use 'diagonal' or 'full'")
        if self.classes < 2:
            raise ConfigurationError(f"classes must be at least 2, got {self.classes}")
        if self.mixture_restarts < 1:
            raise ConfigurationError(f"mixture_restarts must be at least 1, got {self.mixture_restarts}")
        if not self.active_variance > 0:
            raise ConfigurationError(f"active_variance must be positive, got {self.active_variance}")
        if self.train_images is not None and self.train_images < max(self.layer1.batch_size, self.classes * 10):
            raise ConfigurationError(f"train_images={self.train_images} is too small for one batch and {self.classes} clusters")

    def with_seed(self, seed: int) -> "StackedConfig":
        """Return this configuration with both training stages seeded by ``seed``."""
        return replace(self, layer1=replace(self.layer1, seed=seed), joint=replace(self.joint, seed=seed))


PROFILES = {
    "quick": StackedConfig(
        train_images=10_000,
        mixture_restarts=1,
        layer1=TrainConfig(epochs=3, batch_size=128, learning_rate=1e-3),
        joint=TrainConfig(epochs=2, batch_size=128, learning_rate=1e-3),
    ),
    "standard": StackedConfig(),
    "paper": StackedConfig(
        layer1=TrainConfig(epochs=100, batch_size=128, learning_rate=1e-3),
        joint=TrainConfig(epochs=100, batch_size=128, learning_rate=1e-3),
    ),
}


def build(config: StackedConfig, layers: int = 2) -> StackedCorEx:
    """Return the MNIST stack: ``layers=1`` is layer 1 alone (a VAE), ``layers=2`` adds the categorical top."""
    stack = [GaussianLayer(config.latents, config.encoder_hidden)]
    if layers == 2:
        stack.append(CategoricalLayer(config.classes, config.top_hidden, covariance=config.covariance))
    elif layers != 1:
        raise ConfigurationError(f"layers must be 1 or 2, got {layers}")
    return StackedCorEx(784, stack)


def objective(marginal_entropy_sum: float):
    """Return the stacked bound as an objective for :func:`corex_edu.training.fit`."""

    def compute(model: StackedCorEx, batch: torch.Tensor, generator: torch.Generator) -> StackedBound:
        return model.bound(batch, marginal_entropy_sum, generator=generator)

    return compute


@torch.no_grad()
def encode_layer1(model: StackedCorEx, images: torch.Tensor, batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Return q(z1 | x)'s mean and log-variance for every image, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    means, log_variances = [], []
    for start in range(0, images.shape[0], batch_size):
        mean, log_variance = model.encoders[0](images[start : start + batch_size].to(device).flatten(start_dim=1))
        means.append(mean.cpu())
        log_variances.append(log_variance.cpu())
    return torch.cat(means), torch.cat(log_variances)


@torch.no_grad()
def class_probabilities(model: StackedCorEx, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Return q(z2 = k | x) for every image and class, shape (N, classes), on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        outputs = model.encode(images[start : start + batch_size].to(device), sample=False)
        chunks.append(outputs[-1].probabilities.cpu())
    return torch.cat(chunks)


@dataclass(frozen=True)
class MixtureInit:
    """Layer 2 fitted to fixed layer-1 codes by EM: responsibilities and class-conditional moments."""

    responsibilities: torch.Tensor  # (N, K)
    class_mean: torch.Tensor  # (K, m)
    class_covariance: torch.Tensor  # (K, m, m), or the diagonal (K, m) for covariance="diagonal"
    active: np.ndarray  # boolean mask of the z1 dimensions the mixture was fitted on
    log_likelihood: float  # EM's per-image log-likelihood on the active dimensions (nats)


def fit_mixture(mean: torch.Tensor, log_variance: torch.Tensor, config: StackedConfig, seed: int) -> MixtureInit:
    """Fit layer 2 to the layer-1 codes (mean, log_variance) with EM; see the module docstring."""
    variance = log_variance.exp()
    active = (variance.mean(dim=0) < config.active_variance).numpy()
    if active.sum() < 1:
        raise ConfigurationError(
            f"no z1 dimension is active (mean posterior variance below {config.active_variance}); train layer 1 longer"
        )
    points = mean[:, torch.from_numpy(active)].double().numpy()
    mixture = GaussianMixture(config.classes, covariance_type="full", n_init=config.mixture_restarts, random_state=seed, reg_covar=1e-4)
    mixture.fit(points)
    responsibilities = torch.from_numpy(mixture.predict_proba(points)).float()
    weight = responsibilities.sum(dim=0).clamp_min(1e-6)
    class_mean = (responsibilities.T @ mean) / weight[:, None]
    posterior_variance = (responsibilities.T @ variance) / weight[:, None]
    if config.covariance == "full":
        centred = mean[:, None, :] - class_mean[None]
        scatter = torch.einsum("nk,nki,nkj->kij", responsibilities, centred, centred) / weight[:, None, None]
        covariance = scatter + torch.diag_embed(posterior_variance)
    else:
        covariance = (responsibilities.T @ mean.square()) / weight[:, None] - class_mean.square() + posterior_variance
    return MixtureInit(responsibilities, class_mean, covariance, active, float(mixture.score(points)))


def initialise_top(model: StackedCorEx, layer1_mean: torch.Tensor, init: MixtureInit, steps: int = 1500, seed: int = 0) -> float:
    """Set layer 2's decoder to the mixture's class-conditionals and fit q(z2 | z1) to its responsibilities.

    Returns the final cross-entropy between q(z2 | z1) and the responsibilities, in nats.
    """
    generator = torch.Generator().manual_seed(seed)
    encoder, decoder = model.encoders[-1], model.decoders[-1]
    one_hot = torch.eye(init.class_mean.shape[0])
    if init.class_covariance.ndim == 3:
        with torch.no_grad():
            scale = torch.linalg.cholesky(init.class_covariance)
            raw = scale.clone()
            diagonal = (torch.diagonal(scale, dim1=-2, dim2=-1) - 1e-4).clamp_min(1e-6)
            raw.diagonal(dim1=-2, dim2=-1).copy_(torch.log(torch.expm1(diagonal)))
            model.top_scale_tril_raw.copy_(raw)
        log_variance_target = None
    else:
        log_variance_target = init.class_covariance.clamp_min(1e-6).log()
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=3e-3)
    n = layer1_mean.shape[0]
    cross_entropy = torch.zeros(())
    for _ in range(steps):
        index = torch.randint(0, n, (512,), generator=generator)
        log_probabilities = torch.log_softmax(encoder(layer1_mean[index]), dim=1)
        cross_entropy = -(init.responsibilities[index] * log_probabilities).sum(dim=1).mean()
        decoded_mean, decoded_log_variance = decoder(one_hot)
        loss = cross_entropy + (decoded_mean - init.class_mean).square().mean()
        if log_variance_target is not None:
            loss = loss + (decoded_log_variance - log_variance_target).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(cross_entropy.detach())


@dataclass
class StackedRun:
    """A trained stack with the histories of its stages."""

    model: StackedCorEx
    layer1_history: TrainHistory
    joint_history: TrainHistory
    mixture: MixtureInit | None
    config: StackedConfig


def train(
    config: StackedConfig,
    images: torch.Tensor,
    marginal_entropy_sum: float,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> StackedRun:
    """Train the three stages of the module docstring on binary ``images`` (N, 784) and return the stack."""
    config = config.with_seed(seed)
    if config.train_images is not None:
        images = images[: config.train_images]
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    seed_everything(seed)
    layer1 = build(config, layers=1)
    layer1_history = fit(
        layer1, images, config.layer1, objective(marginal_entropy_sum), device=device,
        checkpoint_path=folder / f"stacked-layer1-seed{seed}.pt" if folder else None,
        checkpoint_config=config, progress=progress, description=f"layer 1 (seed {seed})",
    )
    seed_everything(seed)
    model = build(config, layers=2)
    model.encoders[0].load_state_dict(layer1.encoders[0].state_dict())
    model.decoders[0].load_state_dict(layer1.decoders[0].state_dict())
    joint_path = folder / f"stacked-joint-seed{seed}.pt" if folder else None
    mixture = None
    if joint_path is None or not _complete(joint_path):
        mean, log_variance = encode_layer1(layer1, images)
        mixture = fit_mixture(mean, log_variance, config, seed)
        initialise_top(model, mean, mixture, seed=seed)
    joint_history = fit(
        model, images, config.joint, objective(marginal_entropy_sum), device=device,
        checkpoint_path=joint_path, checkpoint_config=config, progress=progress, description=f"joint (seed {seed})",
    )
    return StackedRun(model, layer1_history, joint_history, mixture, config)


def _complete(path: Path) -> bool:
    if not path.exists():
        return False
    state = torch.load(path, map_location="cpu", weights_only=False)
    return bool(state.get("complete", False))


@dataclass(frozen=True)
class ClusterScore:
    """Unsupervised accuracy with the cluster-to-label matching that maximises it (Hungarian algorithm)."""

    accuracy: float
    confusion: np.ndarray  # (clusters, labels) counts
    mapping: dict[int, int]  # cluster -> label
    clusters_used: int


def unsupervised_accuracy(clusters: np.ndarray, labels: np.ndarray, num_clusters: int | None = None) -> ClusterScore:
    """Score cluster ids against labels: the best one-to-one matching of clusters to labels, then accuracy.

    The matching maximises the number of correctly assigned images (linear_sum_assignment on the
    confusion matrix); with more clusters than labels the unmatched clusters count as errors.
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if clusters.shape != labels.shape or clusters.ndim != 1:
        raise ConfigurationError(f"clusters and labels must be 1-D of equal length, got {clusters.shape} and {labels.shape}")
    if clusters.size == 0:
        raise ConfigurationError("clusters is empty")
    if clusters.min() < 0 or labels.min() < 0:
        raise ConfigurationError("cluster ids and labels must be non-negative integers")
    rows = int(num_clusters if num_clusters is not None else clusters.max() + 1)
    columns = int(labels.max() + 1)
    confusion = np.zeros((rows, columns), dtype=np.int64)
    np.add.at(confusion, (clusters, labels), 1)
    matched_rows, matched_columns = linear_sum_assignment(-confusion)
    correct = confusion[matched_rows, matched_columns].sum()
    return ClusterScore(
        accuracy=float(correct / clusters.size),
        confusion=confusion,
        mapping={int(r): int(c) for r, c in zip(matched_rows, matched_columns)},
        clusters_used=int(np.unique(clusters).size),
    )


@torch.no_grad()
def class_samples(model: StackedCorEx, seed: int = 0) -> torch.Tensor:
    """Return one draw z1 ~ p(z1 | z2 = k) for every class k, shape (K, m)."""
    generator = torch.Generator().manual_seed(seed)
    class_mean, class_log_variance = model.class_conditionals()
    noise = torch.randn(class_mean.shape, generator=generator)
    if hasattr(model, "top_scale_tril_raw"):
        return class_mean + torch.einsum("kij,kj->ki", model.class_scale_tril(), noise)
    return class_mean + torch.exp(0.5 * class_log_variance) * noise


@torch.no_grad()
def decode_images(model: StackedCorEx, z1: torch.Tensor) -> torch.Tensor:
    """Return the decoded pixel probabilities for codes z1 (B, m), shape (B, 1, 28, 28)."""
    model.eval()
    return torch.sigmoid(model.decode_x_logits(z1)).view(-1, 1, 28, 28)


@torch.no_grad()
def traversal(model: StackedCorEx, starts: torch.Tensor, dimension: int, values: torch.Tensor) -> torch.Tensor:
    """Decode every start code with z1[dimension] set to each value: shape (rows, len(values), 28, 28)."""
    codes = starts[:, None, :].repeat(1, values.numel(), 1)
    codes[:, :, dimension] = values[None, :]
    return decode_images(model, codes.flatten(end_dim=1)).view(starts.shape[0], values.numel(), 28, 28)


def one_hot_total_correlation(probabilities: torch.Tensor | np.ndarray) -> float:
    """Return TC of the K one-hot indicators of z2 under its aggregate q(z2), in nats.

    z2 drawn from q(z2 | x) and averaged over x is categorical with probabilities p_k = mean_x
    q(z2 = k | x). Its indicators are Bernoulli(p_k), so TC = sum_k H_b(p_k) - H(p), exactly. Seen
    as one categorical variable, z2 has TC = 0 by definition.
    """
    p = torch.as_tensor(probabilities, dtype=torch.float64).mean(dim=0).clamp(1e-12, 1.0)
    entropy = -(p * p.log()).sum()
    complement = (1.0 - p).clamp_min(1e-12)
    binary = -(p * p.log() + complement * complement.log()).sum()
    return float(binary - entropy)


@dataclass(frozen=True)
class LayerTerms:
    """Each layer's CorEx term with tight marginals r = p_theta, estimated on a data set, in nats per image.

    layer 1: L1 = sum_i H(x_i) + E ln p(x | z1) - sum_j I(x : z1_j)
    layer 2: L2 = sum_j H(z1_j) + E ln p(z1 | z2) - I(z1 : z2)
    Their sum is sum_i H(x_i) + ELBO + KL(q(z2) || r(z2)), at least the stacked bound.
    """

    layer1: float
    layer2: float
    reconstruction_x: float  # E ln p(x | z1)
    information_z1: float  # sum_j I(x : z1_j), aggregate-posterior estimate
    entropy_z1: float  # sum_j H(z1_j), aggregate-posterior estimate
    log_likelihood_z1: float  # E ln p(z1 | z2), exact over z1 and z2
    information_z2: float  # I(z1 : z2) = H(q(z2)) - E H(q(z2 | x)), exact over the data set
    standard_error: float  # Monte Carlo standard error of the z1 entropy sums


@torch.no_grad()
def layer_terms(model: StackedCorEx, images: torch.Tensor, marginal_entropy_sum: float, num_queries: int = 2048, seed: int = 0) -> LayerTerms:
    """Estimate both layers' CorEx terms on binary ``images`` (N, 784); see :class:`LayerTerms`."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    mean, log_variance = encode_layer1(model, images)
    reconstruction, log_likelihood, batches = 0.0, 0.0, 0
    probabilities = []
    for start in range(0, images.shape[0], 2048):
        batch = images[start : start + 2048]
        terms = model.bound(batch, marginal_entropy_sum, generator=generator)
        weight = batch.shape[0]
        reconstruction += float(terms.log_likelihood[0]) * weight
        log_likelihood += float(terms.log_likelihood[1]) * weight
        batches += weight
        probabilities.append(model.encode(batch, sample=False)[-1].probabilities)
    reconstruction /= batches
    log_likelihood /= batches
    q = torch.cat(probabilities).double()
    aggregate = q.mean(dim=0)
    information_z2 = float(-(aggregate * aggregate.clamp_min(1e-12).log()).sum() + (q * q.clamp_min(1e-12).log()).sum(dim=1).mean())
    estimate = aggregate_posterior_mi(mean, log_variance, num_queries=num_queries, seed=seed)
    information_z1 = float(estimate.mutual_information.sum())
    entropy_z1 = float(estimate.marginal_entropy.sum())
    standard_error = float(np.sqrt((estimate.standard_error**2).sum()))
    return LayerTerms(
        layer1=marginal_entropy_sum + reconstruction - information_z1,
        layer2=entropy_z1 + log_likelihood - information_z2,
        reconstruction_x=reconstruction,
        information_z1=information_z1,
        entropy_z1=entropy_z1,
        log_likelihood_z1=log_likelihood,
        information_z2=information_z2,
        standard_error=standard_error,
    )
