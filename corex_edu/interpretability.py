"""How much information each latent carries about each labelled attribute, in nats.

I(z_i : a_k) is estimated by binning the encoder mean of z_i into equal-frequency bins and
computing the plug-in mutual information with the binary attribute a_k, as the MIG-style
metrics of the disentanglement literature do with equal-width bins. Equal-frequency bins keep
every bin populated whatever the latent's scale. The plug-in estimate is biased upwards by about
(bins - 1)(values - 1) / (2N) nats whatever the attribute's frequency, which matters for rare
attributes whose entropy H(a_k) is itself small. :func:`attribute_information` therefore measures
the bias of every attribute on a shuffled copy of the attributes (which carry no information about
the latents) and subtracts it before normalising by H(a_k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from corex_edu.errors import ConfigurationError


def quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Return the equal-frequency bin index (0 .. bins-1) of every entry of each column of ``values``."""
    ranks = np.argsort(np.argsort(values, axis=0, kind="stable"), axis=0, kind="stable")
    return (ranks * bins // values.shape[0]).astype(np.int64)


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def plug_in_information(binned: np.ndarray, attributes: np.ndarray, bins: int) -> np.ndarray:
    """Return the plug-in I(bin(z_i) : a_k) for every latent i and binary attribute k, shape (m, K), in nats."""
    n, m = binned.shape
    one_hot = np.zeros((n, m * bins), dtype=np.float64)
    one_hot[np.arange(n)[:, None], binned + bins * np.arange(m)[None]] = 1.0
    ones = one_hot.T @ attributes.astype(np.float64)  # (m * bins, K): count of a_k = 1 in each bin
    bin_counts = one_hot.sum(axis=0)[:, None]
    p_one = attributes.mean(axis=0)[None]  # (1, K)
    within = np.where(bin_counts > 0, ones / np.maximum(bin_counts, 1), 0.0)
    conditional = (bin_counts / n) * _binary_entropy(within)  # (m * bins, K)
    conditional = conditional.reshape(m, bins, -1).sum(axis=1)
    return np.maximum(_binary_entropy(p_one) - conditional, 0.0)


@dataclass(frozen=True)
class AttributeInformation:
    """Latent-attribute information on held-out images, in nats, and what it concentrates on."""

    information: np.ndarray  # (m, K) plug-in I(z_i : a_k) minus the attribute's shuffled bias, at least 0
    normalised: np.ndarray  # (m, K) information / H(a_k), in [0, 1]
    attribute_entropy: np.ndarray  # (K,) H(a_k)
    bias: np.ndarray  # (K,) mean plug-in estimate over latents with attribute k shuffled
    shuffled_mean: float  # mean of ``bias`` over attributes
    names: tuple[str, ...]

    def best(self, latent: int) -> tuple[str, float, float]:
        """Return (best attribute, its normalised information, gap to the second best) for one latent."""
        row = self.normalised[latent]
        order = np.argsort(row)[::-1]
        return self.names[order[0]], float(row[order[0]]), float(row[order[0]] - row[order[1]])


def attribute_information(
    latent_mean: torch.Tensor | np.ndarray,
    attributes: torch.Tensor | np.ndarray,
    names: list[str] | tuple[str, ...],
    bins: int = 20,
    seed: int = 0,
) -> AttributeInformation:
    """Estimate I(z_i : a_k) for every latent and attribute; see the module docstring.

    Args:
        latent_mean: encoder means on held-out images, shape (N, m).
        attributes: binary attributes of the same images, shape (N, K) (bool or 0/1).
        names: the K attribute names.
        bins: equal-frequency bins per latent; at least 2 and at most N / 5.
    """
    z = np.asarray(latent_mean.detach().cpu() if isinstance(latent_mean, torch.Tensor) else latent_mean, dtype=np.float64)
    a = np.asarray(attributes.cpu() if isinstance(attributes, torch.Tensor) else attributes)
    if z.ndim != 2 or a.ndim != 2 or z.shape[0] != a.shape[0]:
        raise ConfigurationError(f"latent_mean (N, m) and attributes (N, K) must share N, got {z.shape} and {a.shape}")
    if len(names) != a.shape[1]:
        raise ConfigurationError(f"got {len(names)} attribute names for {a.shape[1]} attribute columns")
    if not np.isin(a, (0, 1)).all():
        raise ConfigurationError("attributes must be binary (bool or 0/1); map CelebA's -1 to 0 first")
    if not 2 <= bins <= z.shape[0] // 5:
        raise ConfigurationError(f"bins={bins} must lie in [2, N / 5] = [2, {z.shape[0] // 5}] for N = {z.shape[0]}")
    if not np.isfinite(z).all():
        raise ConfigurationError("latent_mean contains NaN or infinite values")
    a = a.astype(np.float64)
    binned = quantile_bins(z, bins)
    shuffled = a[np.random.default_rng(seed).permutation(a.shape[0])]
    bias = plug_in_information(binned, shuffled, bins).mean(axis=0)
    information = np.maximum(plug_in_information(binned, a, bins) - bias[None], 0.0)
    entropy = _binary_entropy(a.mean(axis=0))
    normalised = np.where(entropy > 1e-9, np.minimum(information / np.maximum(entropy, 1e-12), 1.0), 0.0)
    return AttributeInformation(
        information=information,
        normalised=normalised,
        attribute_entropy=entropy,
        bias=bias,
        shuffled_mean=float(bias.mean()),
        names=tuple(names),
    )
