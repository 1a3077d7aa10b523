"""Stacked CorEx: a hierarchy of CorEx layers, which is a hierarchical VAE (Gao et al., 2019, eq. 14-19).

Layer l encodes the layer below, q(z_l | z_{l-1}) with z_0 = x, and decodes it, p(z_{l-1} | z_l). The
stacked bound (all terms in nats, averaged over the batch) is

    sum_i H(x_i) + ELBO,   ELBO = sum_l E ln p(z_{l-1} | z_l) + sum_l H(q(z_l | .)) + E ln r(z_L),

where r is the top layer's fixed prior: N(0, I) for a Gaussian top layer, uniform for a
categorical one. Each encoder of layer l >= 2 reads the *mean* of the layer below, so
q(z_1, ..., z_L | x) = prod_l q(z_l | x) is still a distribution over all latents given x and the
ELBO stays a valid lower bound. Reading the mean removes the sampling noise of z_{l-1} from the
input of q(z_l | .), which matters for a categorical top layer: with noisy inputs the cluster
posterior cannot become confident.

A categorical layer is only allowed on top. Its decoder is evaluated at every one-hot value and
the results are weighted by the softmax probabilities, so the expectation over z_L is exact (no
Gumbel-softmax sampling). Expectations over the Gaussian z_{l-1} in ln p(z_{l-1} | z_l) are taken in
closed form, so only x's reconstruction and the Gaussian z_l fed to decoders are sampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from corex_edu.errors import ConfigurationError
from corex_edu.models import multilayer_perceptron

LOG_2_PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class GaussianLayer:
    """A layer of ``latent_dim`` factorised Gaussian latents with encoder hidden widths ``hidden``."""

    latent_dim: int
    hidden: tuple[int, ...] = (512, 512)


@dataclass(frozen=True)
class CategoricalLayer:
    """A top layer holding one categorical latent with ``classes`` values (a one-hot code).

    ``covariance`` sets the form of each class-conditional p(z_{L-1} | z_L = k): ``"diagonal"``
    (a factorised Gaussian, the decoder of eq. 8 term by term) or ``"full"`` (a Gaussian with a
    learned Cholesky factor per class, which can follow the correlated within-class shape of the
    codes below).
    """

    classes: int
    hidden: tuple[int, ...] = (32, 32, 16, 16)
    covariance: str = "diagonal"


LayerSpec = Union[GaussianLayer, CategoricalLayer]


def layer_width(spec: LayerSpec) -> int:
    return spec.latent_dim if isinstance(spec, GaussianLayer) else spec.classes


def below_width(layers: Sequence[LayerSpec]) -> int:
    """Return the width of the layer under the top one."""
    return layer_width(layers[-2])


def _check_specs(input_dim: int, layers: Sequence[LayerSpec]) -> None:
    if input_dim < 1:
        raise ConfigurationError(f"input_dim must be a positive integer, got {input_dim}")
    if not layers:
        raise ConfigurationError("layers is empty: give at least one GaussianLayer or CategoricalLayer")
    for index, spec in enumerate(layers):
        if not isinstance(spec, (GaussianLayer, CategoricalLayer)):
            raise ConfigurationError(f"layers[{index}] is {spec!r}: use GaussianLayer or CategoricalLayer")
        width = layer_width(spec)
        minimum = 2 if isinstance(spec, CategoricalLayer) else 1
        if width < minimum:
            raise ConfigurationError(f"layers[{index}] has width {width}; it must be at least {minimum}")
        if any(h < 1 for h in spec.hidden):
            raise ConfigurationError(f"layers[{index}].hidden={spec.hidden} contains a width below 1")
        if isinstance(spec, CategoricalLayer) and spec.covariance not in ("diagonal", "full"):
            raise ConfigurationError(f"layers[{index}].covariance={spec.covariance!r}: use 'diagonal' or 'full'")
        if isinstance(spec, CategoricalLayer) and index != len(layers) - 1:
            raise ConfigurationError(
                f"layers[{index}] is categorical but not the top layer; only the top layer may be categorical, "
                "because the layers below decode from a sampled Gaussian code"
            )


class _GaussianHead(nn.Module):
    """An MLP returning the mean and log-variance of a factorised Gaussian."""

    def __init__(self, input_dim: int, hidden: Sequence[int], output_dim: int) -> None:
        super().__init__()
        self.body = multilayer_perceptron(input_dim, hidden)
        width = hidden[-1] if hidden else input_dim
        self.mean = nn.Linear(width, output_dim)
        self.log_variance = nn.Linear(width, output_dim)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(inputs)
        return self.mean(features), self.log_variance(features)


@dataclass
class LayerOutput:
    """One layer's posterior on a batch: Gaussian (mean, log_variance, sample) or categorical (probabilities)."""

    mean: torch.Tensor | None = None
    log_variance: torch.Tensor | None = None
    sample: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    @property
    def probabilities(self) -> torch.Tensor:
        if self.logits is None:
            raise ConfigurationError("this layer is Gaussian; it has no class probabilities")
        return torch.softmax(self.logits, dim=-1)


@dataclass
class StackedBound:
    """The stacked CorEx bound's terms on one batch, each averaged over the batch, in nats.

    ``log_likelihood[l]`` is E ln p(z_{l-1} | z_l) with z_0 = x (layer l = index + 1),
    ``entropy[l]`` is H(q(z_l | .)), and ``log_prior`` is E ln r(z_L). The ELBO is their sum.
    """

    marginal_entropy_sum: float
    log_likelihood: list[torch.Tensor]
    entropy: list[torch.Tensor]
    log_prior: torch.Tensor
    extras: dict[str, float] = field(default_factory=dict)

    def elbo(self) -> torch.Tensor:
        return torch.stack(self.log_likelihood).sum() + torch.stack(self.entropy).sum() + self.log_prior

    def bound(self) -> torch.Tensor:
        return self.marginal_entropy_sum + self.elbo()

    def loss(self) -> torch.Tensor:
        return -self.elbo()

    def summary(self) -> dict[str, float]:
        row = {"bound": float(self.bound().detach()), "elbo": float(self.elbo().detach())}
        for index, value in enumerate(self.log_likelihood):
            row[f"log_likelihood_{index + 1}"] = float(value.detach())
        for index, value in enumerate(self.entropy):
            row[f"entropy_{index + 1}"] = float(value.detach())
        row["log_prior"] = float(self.log_prior.detach())
        row.update(self.extras)
        return row


def gaussian_expected_log_density(
    mean: torch.Tensor, log_variance: torch.Tensor, target_mean: torch.Tensor, target_log_variance: torch.Tensor
) -> torch.Tensor:
    """Return E_{z ~ N(mean, var)} ln N(z; target_mean, target_var), summed over the last axis, in nats.

    Shapes broadcast, so a (batch, 1, m) posterior against (1, K, m) targets gives (batch, K).
    """
    variance_ratio = torch.exp(log_variance - target_log_variance)
    squared = (mean - target_mean).square() * torch.exp(-target_log_variance)
    return -0.5 * (LOG_2_PI + target_log_variance + variance_ratio + squared).sum(dim=-1)


def full_gaussian_expected_log_density(mean: torch.Tensor, log_variance: torch.Tensor, target_mean: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """Return E_{z ~ N(mean, diag var)} ln N(z; target_mean[k], L_k L_k^T) for every k, shape (batch, K), in nats.

    ``mean`` and ``log_variance`` are (batch, m), ``target_mean`` is (K, m) and ``scale_tril`` the
    (K, m, m) lower-triangular Cholesky factors with a positive diagonal.
    """
    dimension = mean.shape[-1]
    identity = torch.eye(dimension, device=mean.device, dtype=mean.dtype).expand_as(scale_tril)
    inverse = torch.linalg.solve_triangular(scale_tril, identity, upper=False)  # L_k^{-1}
    whitened = torch.einsum("kij,bkj->bki", inverse, mean[:, None, :] - target_mean[None])
    trace = log_variance.exp() @ inverse.square().sum(dim=1).T  # sum_i var_i (Sigma_k^{-1})_ii
    log_determinant = 2.0 * torch.log(torch.diagonal(scale_tril, dim1=-2, dim2=-1)).sum(dim=-1)
    return -0.5 * (dimension * LOG_2_PI + log_determinant[None] + trace + whitened.square().sum(dim=-1))


def gaussian_entropy(log_variance: torch.Tensor) -> torch.Tensor:
    """Return the differential entropy of a factorised Gaussian, summed over the last axis, in nats."""
    return 0.5 * (LOG_2_PI + 1.0 + log_variance).sum(dim=-1)


class StackedCorEx(nn.Module):
    """A stack of CorEx layers over binary data x (Bernoulli decoder for the bottom layer).

    Args:
        input_dim: number of observed binary variables x_i.
        layers: layer specifications from the bottom (next to x) to the top; only the top may
            be categorical.
        decoder_hidden: hidden widths of each layer's decoder p(z_{l-1} | z_l); by default the
            encoder's widths reversed.

    The MNIST model of Gao et al. (2019, "Auto-Encoding Total Correlation Explanation") is ``StackedCorEx(784, [GaussianLayer(64, (512, 512)),
    CategoricalLayer(10, (32, 32, 16, 16))])``.
    """

    def __init__(self, input_dim: int, layers: Sequence[LayerSpec], decoder_hidden: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        layers = list(layers)
        _check_specs(input_dim, layers)
        if decoder_hidden is not None and len(decoder_hidden) != len(layers):
            raise ConfigurationError(f"decoder_hidden has {len(decoder_hidden)} entries for {len(layers)} layers; give one per layer")
        self.input_dim = input_dim
        self.specs = layers
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        below = input_dim
        for index, spec in enumerate(layers):
            hidden = tuple(spec.hidden)
            back = tuple(decoder_hidden[index]) if decoder_hidden is not None else hidden[::-1]
            width = layer_width(spec)
            if isinstance(spec, GaussianLayer):
                self.encoders.append(_GaussianHead(below, hidden, width))
            else:
                self.encoders.append(multilayer_perceptron(below, hidden).append(nn.Linear(hidden[-1] if hidden else below, width)))
            if index == 0:
                self.decoders.append(multilayer_perceptron(width, back).append(nn.Linear(back[-1] if back else width, input_dim)))
            else:
                self.decoders.append(_GaussianHead(width, back, below))
            below = width
        top = layers[-1]
        if isinstance(top, CategoricalLayer) and top.covariance == "full" and len(layers) >= 2:
            # Unconstrained Cholesky parameters; the diagonal goes through softplus and starts at 1.
            initial = torch.zeros(top.classes, below_width(layers), below_width(layers))
            initial.diagonal(dim1=-2, dim2=-1).fill_(math.log(math.expm1(1.0)))
            self.top_scale_tril_raw = nn.Parameter(initial)

    @property
    def top_is_categorical(self) -> bool:
        return isinstance(self.specs[-1], CategoricalLayer)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True) -> list[LayerOutput]:
        """Run every encoder upwards; layer l >= 2 reads the mean of layer l - 1."""
        outputs: list[LayerOutput] = []
        inputs = x.flatten(start_dim=1)
        for spec, encoder in zip(self.specs, self.encoders):
            if isinstance(spec, GaussianLayer):
                mean, log_variance = encoder(inputs)
                value = mean
                if sample:
                    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
                    value = mean + torch.exp(0.5 * log_variance) * noise
                outputs.append(LayerOutput(mean=mean, log_variance=log_variance, sample=value))
                inputs = mean
            else:
                outputs.append(LayerOutput(logits=encoder(inputs)))
        return outputs

    def decode_x_logits(self, z1: torch.Tensor) -> torch.Tensor:
        """Return the Bernoulli logits of p(x | z_1)."""
        return self.decoders[0](z1)

    def decode_gaussian(self, layer: int, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mean, log_variance) of p(z_{layer-1} | z_layer) for a batch of codes; ``layer`` counts from 1."""
        if layer < 2 or layer > len(self.specs):
            raise ConfigurationError(f"layer must be between 2 and {len(self.specs)} for a Gaussian decoder, got {layer}")
        return self.decoders[layer - 1](code)

    def class_conditionals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return p(z_{L-1} | z_L = k) for every class k of the categorical top layer: (K, m) mean and log-variance."""
        if not self.top_is_categorical or len(self.specs) < 2:
            raise ConfigurationError("class_conditionals needs a categorical top layer above at least one Gaussian layer")
        classes = self.specs[-1].classes
        parameter = next(self.parameters())
        one_hot = torch.eye(classes, device=parameter.device, dtype=parameter.dtype)
        return self.decode_gaussian(len(self.specs), one_hot)

    def class_scale_tril(self) -> torch.Tensor:
        """Return the (K, m, m) Cholesky factors of a full-covariance categorical top layer."""
        if not hasattr(self, "top_scale_tril_raw"):
            raise ConfigurationError("class_scale_tril needs a top CategoricalLayer with covariance='full' above a Gaussian layer")
        raw = self.top_scale_tril_raw
        diagonal = F.softplus(torch.diagonal(raw, dim1=-2, dim2=-1)) + 1e-4
        return torch.tril(raw, diagonal=-1) + torch.diag_embed(diagonal)

    def class_log_densities(self, mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
        """Return E_{z ~ q} ln p(z_{L-1} = z | z_L = k) for every class k, shape (batch, K), in nats.

        ``mean`` and ``log_variance`` describe q(z_{L-1} | x), the Gaussian layer under the top.
        """
        class_mean, class_log_variance = self.class_conditionals()
        if hasattr(self, "top_scale_tril_raw"):
            return full_gaussian_expected_log_density(mean, log_variance, class_mean, self.class_scale_tril())
        return gaussian_expected_log_density(mean[:, None], log_variance[:, None], class_mean[None], class_log_variance[None])

    def bound(self, x: torch.Tensor, marginal_entropy_sum: float = 0.0, generator: torch.Generator | None = None) -> StackedBound:
        """Return the stacked bound's terms on a batch of binary images x, in nats per image."""
        outputs = self.encode(x, generator=generator)
        target = x.flatten(start_dim=1)
        logits = self.decode_x_logits(outputs[0].sample)
        log_likelihood = [-F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=1).mean()]
        entropy: list[torch.Tensor] = []
        extras: dict[str, float] = {}
        for index, (spec, output) in enumerate(zip(self.specs, outputs)):
            layer = index + 1
            if isinstance(spec, GaussianLayer):
                entropy.append(gaussian_entropy(output.log_variance).mean())
            else:
                probabilities = output.probabilities
                log_probabilities = torch.log_softmax(output.logits, dim=-1)
                entropy.append(-(probabilities * log_probabilities).sum(dim=-1).mean())
                usage = probabilities.mean(dim=0)
                extras["top_usage_entropy"] = float(-(usage * torch.log(usage.clamp_min(1e-12))).sum().detach())
            if layer >= 2:
                below = outputs[index - 1]
                if isinstance(spec, GaussianLayer):
                    mean, log_variance = self.decode_gaussian(layer, output.sample)
                    log_likelihood.append(gaussian_expected_log_density(below.mean, below.log_variance, mean, log_variance).mean())
                else:
                    per_class = self.class_log_densities(below.mean, below.log_variance)
                    log_likelihood.append((output.probabilities * per_class).sum(dim=1).mean())
        top, top_output = self.specs[-1], outputs[-1]
        if isinstance(top, GaussianLayer):
            log_prior = (-0.5 * (LOG_2_PI + top_output.mean.square() + top_output.log_variance.exp())).sum(dim=1).mean()
        else:
            log_prior = torch.full((), -math.log(top.classes), device=x.device, dtype=logits.dtype)
        return StackedBound(marginal_entropy_sum, log_likelihood, entropy, log_prior, extras)
