"""Total correlation of a factorised Gaussian encoder's aggregate posterior, in nats.

The encoder maps data point x_n to q(z | x_n) = prod_j N(z_j; mu_nj, sigma_nj^2). Over a data
set of N points the aggregate posterior is the mixture q(z) = 1/N sum_n q(z | x_n), and

    TC(z) = E_q(z)[ln q(z) - sum_j ln q(z_j)] = sum_j H(z_j) - H(z)   (eq. 1 applied to z).

All estimators below take the encoder outputs ``mean`` and ``log_variance`` of shape (N, m),
draw one query z_i ~ q(z | x_i) per data point used, and average ln q(z_i) - sum_j ln q(z_ij)
over the queries. They differ in how they evaluate q at a query:

* :func:`mixture_total_correlation`: every one of the N mixture components. It estimates the
  TC of the empirical mixture without bias, so it converges to the population value as N grows.
* :func:`minibatch_weighted_total_correlation` (MWS) and
  :func:`minibatch_stratified_total_correlation` (MSS): only the M components of the query's
  minibatch, weighted as in beta-TCVAE (Chen et al. 2018, "Isolating Sources of
  Disentanglement in Variational Autoencoders"). Both are biased; see their docstrings.
* :func:`sample_aggregate_posterior` draws z ~ q(z) for ``estimators.knn_total_correlation``.

:func:`minibatch_log_densities` is the differentiable per-batch building block of MWS and MSS,
for use inside a training loss. :func:`linear_gaussian_encoder` builds the test case with a
closed-form TC(z) that tests/test_tc_estimators.py and benchmarks/estimators.py use.

Measured bias on that test case (4 latents, 5 seeds, benchmarks/README.md), in nats:

=========================  ===========================  ===========================
estimator                  TC = 0.218 (s^2 = 1), N=10^4  TC = 0.715 (s^2 = 0.1), N=10^4
=========================  ===========================  ===========================
mixture, all N queries     -0.003                        +0.028 (+0.152 at N = 1,000)
kNN (k = 3) on samples     -0.002                        +0.006 (-0.039 at N = 1,000)
MWS, M = 32 / 2,048        (m-1) ln N + 0.070 / +0.001   (m-1) ln N + 1.16 / +0.10
MSS, M = 32 / 2,048        -0.079 / -0.003               -1.07 / -0.022
=========================  ===========================  ===========================
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from corex_edu import gaussian
from corex_edu.errors import ConfigurationError
from corex_edu.mixture_density import DEFAULT_NUM_QUERIES, LOG_2_PI, check_encoder_outputs, draw_queries, mixture_log_density

# Largest (batch x batch x latents) block that minibatch_log_densities builds at once.
MINIBATCH_BLOCK_ELEMENTS = 2**24


@dataclass(frozen=True)
class TotalCorrelationEstimate:
    """An estimate of TC(z) under the aggregate posterior and the entropies behind it, in nats."""

    total_correlation: float  # sum_j H(z_j) - H(z)
    standard_error: float  # Monte Carlo standard error of total_correlation
    joint_entropy: float  # H(z) = -E ln q(z)
    marginal_entropies: np.ndarray  # H(z_j) = -E ln q(z_j), shape (m,)
    num_points: int  # N, the number of mixture components
    num_queries: int  # Q, the number of z samples averaged
    batch_size: int | None  # M for the minibatch estimators; None for the whole-data-set mixture


@torch.no_grad()
def mixture_total_correlation(
    mean: torch.Tensor | np.ndarray,
    log_variance: torch.Tensor | np.ndarray,
    num_queries: int | None = DEFAULT_NUM_QUERIES,
    chunk_elements: int | None = None,
    seed: int = 0,
) -> TotalCorrelationEstimate:
    """Estimate TC(z) with every query evaluated against all N components of q(z).

    ln q(z_i) and each ln q(z_ij) are exact sums over the N components, so the average over
    queries is an unbiased Monte Carlo estimate of TC of the empirical mixture
    1/N sum_n q(z | x_n). That mixture converges to the population aggregate posterior as N
    grows, and so does the estimate.

    NOTE: at finite N the empirical mixture has more TC than the population whenever the
    encoder variance is small next to the spread of the means, because q(z) then breaks into
    N separate bumps. The extreme is (m - 1) ln N for bumps that do not overlap even in one
    coordinate. For the 4-latent linear-Gaussian encoder of benchmarks/estimators.py with
    noise variance 0.1 (TC = 0.715 nats) the excess was 0.15 nats at N = 1,000 and 0.03 nats
    at N = 10,000; with noise variance 1 it was within 0.003 nats of zero at both sizes.

    Args:
        mean, log_variance: encoder outputs over the data set, shape (N, m).
        num_queries: query points, drawn without replacement; ``None`` or a value of at
            least N uses all N. A random subset leaves the estimate unbiased and widens
            ``standard_error``; the default, 2,048, is the one of
            ``estimators.aggregate_posterior_mi``.
        chunk_elements: float32 values per block of the density kernel; ``None`` picks a
            cache-sized block on a CPU. Must be at least N.
        seed: seed for picking queries and drawing z.

    Cost: Q x N x m Gaussian densities, about 2.5 ns each on one core of the benchmark
    machine because the joint density needs a second accumulator, and memory of a few copies
    of the (N, m) inputs.
    """
    mu, log_var = check_encoder_outputs(mean, log_variance)
    n, m = mu.shape
    _check_latents(m)
    _, queries = draw_queries(mu, log_var, num_queries, seed)
    densities = mixture_log_density(queries, mu, log_var, joint=True, block_elements=chunk_elements)
    terms = densities.joint - densities.marginal.sum(dim=1)
    return TotalCorrelationEstimate(
        total_correlation=float(terms.mean()),
        standard_error=float(terms.std() / math.sqrt(terms.numel())),
        joint_entropy=float(-densities.joint.mean()),
        marginal_entropies=(-densities.marginal.mean(dim=0)).cpu().numpy(),
        num_points=n,
        num_queries=queries.shape[0],
        batch_size=None,
    )


def minibatch_log_densities(
    z: torch.Tensor,
    mean: torch.Tensor,
    log_variance: torch.Tensor,
    dataset_size: int,
    stratified: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate ln q(z_i) and every ln q(z_ij) from one minibatch, as beta-TCVAE does.

    Row i of the batch contains z_i ~ q(z | x_i) and the encoder outputs of x_i. The mixture
    density at z_i is replaced by a weighted sum over the M components in the batch,
    q(z_i) ~= sum_k w_ik q(z_i | x_k), and likewise for each coordinate. The weights are:

    * minibatch weighted sampling (``stratified=False``): w_ik = 1 / (N M) for every k, the
      weights of beta-TCVAE's estimator. The weights sum to 1/N instead of 1, so where the
      batch components overlap the sum is about q(z_i) / N.
    * minibatch stratified sampling (``stratified=True``): w_ii = 1/N for the query's own
      component, w_ik = (N - M + 1) / (N (M - 1)) for one other row k (the next row,
      cyclically), and w_ik = 1 / (M - 1) for the other M - 2 rows. Each row of weights sums
      to 1 and the other rows share the mass (N - 1)/N that the N - 1 other components have
      in q, so for a uniformly drawn batch the sum is an unbiased estimate of q(z_i); its
      logarithm is biased low (Jensen's inequality).

    Args:
        z: samples, shape (M, m); row i drawn from q(z | x_i).
        mean, log_variance: encoder outputs of the same M data points, shape (M, m).
        dataset_size: N, the number of data points the batch was drawn from; at least M.
        stratified: use the stratified weights instead of the weighted-sampling ones.

    Returns:
        (ln q(z_i) of shape (M,), ln q(z_ij) of shape (M, m)), in the dtype of ``z`` and
        differentiable with respect to all three tensors.

    Cost: M x M x m log-densities, built in blocks of at most 2**24 values.
    """
    batch, m = z.shape
    if mean.shape != z.shape or log_variance.shape != z.shape:
        raise ConfigurationError(
            f"z, mean and log_variance must share one shape (M, m), got {tuple(z.shape)}, {tuple(mean.shape)} and {tuple(log_variance.shape)}"
        )
    _check_batch_size(batch, dataset_size)
    log_weights = _log_weight_matrix(batch, dataset_size, stratified, z.dtype, z.device)  # (M, M): query i, component k

    latent_block = max(1, MINIBATCH_BLOCK_ELEMENTS // (batch * batch))
    log_joint_terms = log_weights.clone()
    log_marginals = []
    for j0 in range(0, m, latent_block):
        j1 = min(m, j0 + latent_block)
        difference = z[:, None, j0:j1] - mean[None, :, j0:j1]  # (M, M, block)
        log_components = -0.5 * (LOG_2_PI + log_variance[None, :, j0:j1] + difference.square() * torch.exp(-log_variance[None, :, j0:j1]))
        log_joint_terms = log_joint_terms + log_components.sum(dim=2)
        log_marginals.append(torch.logsumexp(log_components + log_weights[:, :, None], dim=1))
    return torch.logsumexp(log_joint_terms, dim=1), torch.cat(log_marginals, dim=1)


@torch.no_grad()
def minibatch_weighted_total_correlation(
    mean: torch.Tensor | np.ndarray,
    log_variance: torch.Tensor | np.ndarray,
    batch_size: int,
    seed: int = 0,
) -> TotalCorrelationEstimate:
    """Estimate TC(z) with beta-TCVAE's minibatch weighted sampling (MWS), averaged over the data set.

    The rows are shuffled and cut into N // M batches of M rows, leaving out the remainder.
    Each batch gives ln q(z_i) - sum_j ln q(z_ij) for its rows through
    :func:`minibatch_log_densities`, and the estimate is the mean over all rows used.

    NOTE: MWS is biased upwards by about (m - 1) ln N nats. Its weights sum to 1/N, so where
    the batch components overlap each density estimate is about N times too small, once for
    the joint and once for each of the m marginals. On top of that offset comes a positive
    excess that shrinks as M grows, the extra TC of a mixture of only M bumps. For 4 latents
    and N = 10,000 ((m - 1) ln N = 27.6 nats) the excess was 1.16 nats at M = 32 and 0.10 at
    M = 2,048 with encoder noise variance 0.1, and 0.07 and 0.001 nats with variance 1.
    The offset has no gradient, so it does no harm in beta-TCVAE training, but the value is
    not a TC estimate; use :func:`mixture_total_correlation` for that.

    Args:
        mean, log_variance: encoder outputs over the data set, shape (N, m).
        batch_size: M, between 2 and N.
        seed: seed for the shuffle and for drawing z.
    """
    return _minibatch_total_correlation(mean, log_variance, batch_size, stratified=False, seed=seed)


@torch.no_grad()
def minibatch_stratified_total_correlation(
    mean: torch.Tensor | np.ndarray,
    log_variance: torch.Tensor | np.ndarray,
    batch_size: int,
    seed: int = 0,
) -> TotalCorrelationEstimate:
    """Estimate TC(z) with beta-TCVAE's minibatch stratified sampling (MSS), averaged over the data set.

    Batching is as in :func:`minibatch_weighted_total_correlation`; the weights are the
    stratified ones of :func:`minibatch_log_densities`.

    NOTE: MSS is biased downwards and can be negative. Each density estimate is unbiased, but
    its logarithm is too small on average, and the joint density, which has to be estimated
    from M points in m dimensions, is far noisier than the one-dimensional marginals. The
    deficit shrinks as M grows; at M = N the estimate is close to the mixture estimate. For
    4 latents and N = 10,000 the bias was -1.07 nats at M = 32 and -0.022 at M = 2,048 with
    encoder noise variance 0.1 (TC = 0.715), and -0.079 and -0.003 nats with variance 1
    (TC = 0.218). With 4 independent latents (TC = 0) and M = 32 the estimate is negative.

    Args:
        mean, log_variance: encoder outputs over the data set, shape (N, m).
        batch_size: M, between 2 and N.
        seed: seed for the shuffle and for drawing z.
    """
    return _minibatch_total_correlation(mean, log_variance, batch_size, stratified=True, seed=seed)


def sample_aggregate_posterior(mean: torch.Tensor | np.ndarray, log_variance: torch.Tensor | np.ndarray, seed: int = 0) -> np.ndarray:
    """Draw z_n ~ q(z | x_n) for every row, giving N samples of q(z) as an (N, m) float64 array.

    ``estimators.knn_total_correlation(sample_aggregate_posterior(mean, log_variance))`` is the
    kNN estimate of TC(z). It is consistent as N grows, but in many dimensions it is biased
    towards zero like every kNN estimate (see that function).
    """
    mu, log_var = check_encoder_outputs(mean, log_variance)
    generator = torch.Generator(device=mu.device).manual_seed(seed)
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=torch.float64)
    return (mu.double() + torch.exp(0.5 * log_var.double()) * noise).cpu().numpy()


def linear_gaussian_encoder(
    data_covariance: np.ndarray, weights: np.ndarray, encoder_variance: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Encode n samples of x ~ N(0, S) with q(z | x) = N(W x, diag(s^2)), the closed-form test case.

    Its aggregate posterior over infinitely many points is N(0, W S W^T + diag(s^2)), whose TC
    ``gaussian.linear_encoder_decomposition`` gives exactly.

    Returns:
        (mean of shape (n, m), log_variance of shape (n, m), the population TC(z) in nats).
    """
    covariance = np.asarray(data_covariance, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    variance = np.asarray(encoder_variance, dtype=np.float64).reshape(-1)
    tc_z = gaussian.linear_encoder_decomposition(covariance, weights, variance).tc_z
    x = np.random.default_rng(seed).multivariate_normal(np.zeros(covariance.shape[0]), covariance, size=n)
    mean = x @ weights.T
    log_variance = np.broadcast_to(np.log(variance), mean.shape).copy()
    return mean, log_variance, tc_z


def _minibatch_total_correlation(mean, log_variance, batch_size: int, stratified: bool, seed: int) -> TotalCorrelationEstimate:
    mu, log_var = check_encoder_outputs(mean, log_variance)
    n, m = mu.shape
    _check_latents(m)
    _check_batch_size(batch_size, n)
    mu, log_var = mu.double(), log_var.double()
    generator = torch.Generator(device=mu.device).manual_seed(seed)
    num_batches = n // batch_size
    order = torch.randperm(n, generator=generator, device=mu.device)[: num_batches * batch_size]
    noise = torch.randn(order.numel(), m, generator=generator, device=mu.device, dtype=torch.float64)
    z = mu[order] + torch.exp(0.5 * log_var[order]) * noise

    joint_terms, marginal_terms = [], []
    for b in range(num_batches):
        rows = slice(b * batch_size, (b + 1) * batch_size)
        log_joint, log_marginal = minibatch_log_densities(z[rows], mu[order[rows]], log_var[order[rows]], n, stratified)
        joint_terms.append(log_joint)
        marginal_terms.append(log_marginal)
    log_joint = torch.cat(joint_terms)
    log_marginal = torch.cat(marginal_terms)
    terms = log_joint - log_marginal.sum(dim=1)
    if num_batches >= 2:
        # Rows of one batch share their density estimates, so the batch means are the
        # independent replicates.
        batch_means = terms.view(num_batches, batch_size).mean(dim=1)
        standard_error = float(batch_means.std() / math.sqrt(num_batches))
    else:
        # NOTE: with a single batch the rows are not independent; this per-row standard error
        # understates the batch-to-batch variation.
        standard_error = float(terms.std() / math.sqrt(terms.numel()))
    return TotalCorrelationEstimate(
        total_correlation=float(terms.mean()),
        standard_error=standard_error,
        joint_entropy=float(-log_joint.mean()),
        marginal_entropies=(-log_marginal.mean(dim=0)).cpu().numpy(),
        num_points=n,
        num_queries=terms.numel(),
        batch_size=batch_size,
    )


def _log_weight_matrix(batch: int, dataset_size: int, stratified: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if not stratified:
        return torch.full((batch, batch), -math.log(dataset_size * batch), dtype=dtype, device=device)
    weights = torch.full((batch, batch), 1.0 / (batch - 1), dtype=torch.float64)
    rows = torch.arange(batch)
    weights[rows, (rows + 1) % batch] = (dataset_size - batch + 1) / (dataset_size * (batch - 1))
    weights[rows, rows] = 1.0 / dataset_size
    return weights.log().to(dtype=dtype, device=device)


def _check_batch_size(batch_size: int, dataset_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 2:
        raise ConfigurationError(f"batch_size must be an integer of at least 2, got {batch_size!r}")
    if isinstance(dataset_size, bool) or not isinstance(dataset_size, numbers.Integral) or dataset_size < batch_size:
        raise ConfigurationError(
            f"the data set size N={dataset_size!r} must be an integer of at least the batch size M={batch_size}; "
            "pass the number of rows the batches are drawn from, or a smaller batch_size"
        )


def _check_latents(m: int) -> None:
    if m < 2:
        raise ConfigurationError(f"total correlation needs at least 2 latents, got m={m}")
