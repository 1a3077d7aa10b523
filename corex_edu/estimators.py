"""Estimators of entropy, mutual information and total correlation, in nats.

* :func:`knn_entropy`: Kozachenko-Leonenko entropy estimate with the max-norm.
* :func:`knn_total_correlation` and :func:`knn_mutual_information`: the Kraskov-Stoegbauer-
  Grassberger (KSG, algorithm 1) estimator, generalised to any number of variables.
* :func:`gaussian_total_correlation`: plug-in TC from the sample covariance; exact for
  Gaussian data up to sampling error, biased for anything else.
* :func:`aggregate_posterior_mi`: I(x : z_j) for every latent of a Gaussian encoder, with the
  aggregate posterior p(z_j) = 1/N sum_n N(mu_nj, sigma_nj^2) over the whole data set.
  ``corex_edu.tc_estimators`` estimates TC(z) under the same aggregate posterior.

NOTE: kNN estimators are biased towards zero when the dependence is strong and N is small.
For the 2-D Gaussian with rho = 0.9 (TC 0.830 nats) and k = 3, notebook 01's sweep over 10 data
sets measured a bias under 0.01 nats with a standard deviation of 0.027 nats at N = 1,000 and
0.012 nats at N = 10,000. tests/test_estimators.py enforces 0.05 and 0.02 nats on the mean of 5 seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma
from sklearn.neighbors import KDTree

from corex_edu.errors import ConfigurationError
from corex_edu.gaussian import total_correlation as _gaussian_tc
from corex_edu.mixture_density import DEFAULT_NUM_QUERIES, LOG_2_PI, check_encoder_outputs, draw_queries, mixture_log_density


def _as_samples(samples: np.ndarray, minimum: int) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ConfigurationError(f"samples must have shape (n, d), got {array.shape}")
    if array.shape[0] < minimum:
        raise ConfigurationError(f"need at least {minimum} samples, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ConfigurationError("samples contain NaN or infinite values; drop or impute them first")
    return array


def _check_k(k: int, n: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigurationError(f"k must be a positive integer, got k={k!r}")
    if k >= n:
        raise ConfigurationError(f"k must be smaller than the number of samples, got k={k} with n={n}")


def _check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers == 0 or workers < -1:
        raise ConfigurationError(f"workers must be a positive number of threads or -1 for every core, got workers={workers!r}")


def _has_repeated_values(samples: np.ndarray, order: np.ndarray) -> bool:
    """Tell whether any column repeats a value; ``order`` is ``np.argsort(samples, axis=0)``."""
    ordered = np.take_along_axis(samples, order, axis=0)
    return bool(np.any(ordered[1:] == ordered[:-1]))


def _add_jitter(samples: np.ndarray, jitter: float, seed: int) -> np.ndarray:
    # kNN counts assume distinct points: repeated values (rounded or discrete data) would put
    # many neighbours at distance zero, so a tiny noise relative to each column's scale is added.
    scale = samples.std(axis=0, keepdims=True)
    scale[scale == 0] = 1.0
    rng = np.random.default_rng(seed)
    return samples + jitter * scale * rng.standard_normal(samples.shape)


def _break_ties(samples: np.ndarray, jitter: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the samples, jittered only if a column repeats a value, and their per-column argsort."""
    order = np.argsort(samples, axis=0)
    if jitter > 0 and _has_repeated_values(samples, order):
        samples = _add_jitter(samples, jitter, seed)
        order = np.argsort(samples, axis=0)
    return samples, order


def _kth_neighbour_distance(samples: np.ndarray, k: int, workers: int = 1) -> np.ndarray:
    # A sliding-midpoint tree (balanced_tree=False) builds faster and queries as fast in one to
    # three dimensions; in more dimensions the median split queries faster.
    low_dimensional = samples.shape[1] <= 3
    tree = cKDTree(samples, leafsize=8 if low_dimensional else 16, balanced_tree=not low_dimensional, compact_nodes=not low_dimensional)
    distances, _ = tree.query(samples, k=[k + 1], p=np.inf, workers=workers)
    return distances[:, 0]


def _count_within(samples: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Count, for each point, the other points at max-norm distance strictly below ``radius``."""
    if samples.shape[1] == 1:
        return _count_within_column(samples[:, 0], radius, np.argsort(samples[:, 0]))
    strictly_inside = np.nextafter(radius, 0.0)  # query_radius counts distances <= r
    # scikit-learn's radius count ran 3 to 5 times faster than scipy's query_ball_point in 4
    # and 16 dimensions (scikit-learn 1.9, scipy 1.17, one thread), but it has no threads.
    return KDTree(samples, metric="chebyshev").query_radius(samples, strictly_inside, count_only=True) - 1


def _count_within_column(values: np.ndarray, radius: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """Count the other values closer than ``radius``; ``order`` is the argsort, or None for sorted values."""
    # Two binary searches per point in the sorted values give the count. Searching for the
    # points in sorted order keeps the searches cache-friendly.
    ordered = values if order is None else values[order]
    ordered_radius = radius if order is None else radius[order]
    upper = np.searchsorted(ordered, ordered + ordered_radius, side="left")
    lower = np.searchsorted(ordered, ordered - ordered_radius, side="right")
    upper, lower = _exact_window(ordered, ordered_radius, upper, lower)
    if order is None:
        return upper - lower - 1
    counts = np.empty(len(order), dtype=np.intp)
    counts[order] = upper - lower - 1
    return counts


def _exact_window(ordered: np.ndarray, radius: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the search results until [lower, upper) contains exactly the j with |x_j - x_i| < r_i.

    x_i + r_i and x_i - r_i are rounded, so the binary searches can land a place off, and the
    k-th neighbour, which lies at distance r_i exactly, would then be counted. The checks use
    the same subtraction as the k-d tree. Rounded differences grow with j, so an edge moves
    by a few places at most, and only the points that moved are checked again.
    """
    n = len(ordered)
    last = n - 1

    def move(edge: np.ndarray, step: int, wrong: Callable[[np.ndarray | slice], np.ndarray]) -> None:
        points = np.flatnonzero(wrong(slice(None)))  # a slice checks every point without a gather
        while points.size:
            edge[points] += step
            points = points[wrong(points)]

    # The element just inside an edge must be closer than r_i, the one just outside must not be.
    move(upper, -1, lambda i: (upper[i] > 0) & (ordered[np.maximum(upper[i] - 1, 0)] - ordered[i] >= radius[i]))
    move(upper, +1, lambda i: (upper[i] < n) & (ordered[np.minimum(upper[i], last)] - ordered[i] < radius[i]))
    move(lower, +1, lambda i: (lower[i] < n) & (ordered[i] - ordered[np.minimum(lower[i], last)] >= radius[i]))
    move(lower, -1, lambda i: (lower[i] > 0) & (ordered[i] - ordered[np.maximum(lower[i] - 1, 0)] < radius[i]))
    return upper, lower


def knn_entropy(samples: np.ndarray, k: int = 3, jitter: float = 1e-10, seed: int = 0, workers: int = 1) -> float:
    """Estimate the differential entropy H(x) in nats (Kozachenko-Leonenko, max-norm).

    H ~= psi(N) - psi(k) + d ln 2 + d mean_i ln eps_i, where eps_i is the max-norm distance
    from sample i to its k-th nearest neighbour. ``workers`` threads run the neighbour search
    (-1: all cores). ``jitter`` noise is added only when a column contains repeated values.
    """
    data = _as_samples(samples, minimum=2)
    n, d = data.shape
    _check_k(k, n)
    _check_workers(workers)
    data, _ = _break_ties(data, jitter, seed)
    radius = _kth_neighbour_distance(data, k, workers)
    return float(digamma(n) - digamma(k) + d * math.log(2.0) + d * np.mean(np.log(radius)))


def knn_total_correlation(
    samples: np.ndarray,
    groups: Sequence[Sequence[int]] | None = None,
    k: int = 3,
    jitter: float = 1e-10,
    seed: int = 0,
    workers: int = 1,
) -> float:
    """Estimate TC between groups of columns in nats with the KSG estimator (algorithm 1).

    TC ~= psi(k) + (g - 1) psi(N) - mean_i sum_g psi(n_g(i) + 1), where g is the number of
    groups and n_g(i) counts the points closer than sample i's k-th joint neighbour in the
    subspace of group g (max-norm). With two groups this is the KSG mutual information.
    The neighbour search and the counts are exact: a k-d tree finds the k-th joint neighbour,
    and one-column groups are counted by binary search in the sorted column.

    Args:
        samples: shape (n, d).
        groups: column indices of each variable; default one group per column.
        k: number of neighbours; 3 to 10 trades bias (small k) against variance.
        jitter: relative size of the noise that breaks ties; added only when a column
            contains repeated values.
        seed: seed of that noise.
        workers: threads for the joint neighbour search (-1: all cores); the counts use one.
            More threads pay off only on idle cores. On the 2-core benchmark machine, busy
            with other work, workers=2 was no faster at N = 10,000 and up to 3.9 times
            slower at N = 1,000, hence the default 1.
    """
    data = _as_samples(samples, minimum=2)
    n, d = data.shape
    _check_k(k, n)
    _check_workers(workers)
    if groups is None:
        groups = [[column] for column in range(d)]
    groups = [list(group) for group in groups]
    if len(groups) < 2 or any(not group for group in groups):
        raise ConfigurationError("total correlation needs at least two non-empty groups of columns")
    flat = [column for group in groups for column in group]
    if len(set(flat)) != len(flat) or min(flat) < 0 or max(flat) >= d:
        raise ConfigurationError(f"groups must be disjoint column indices in [0, {d}), got {groups}")
    if flat != list(range(d)):
        data = data[:, flat]
    data, order = _break_ties(data, jitter, seed)
    groups = _renumber(groups)

    # The estimate is a mean over points, so their order is free. Sorting the rows by the
    # first column speeds up the tree queries (neighbouring queries visit the same nodes)
    # and leaves that column's counts without a gather.
    by_first_column = order[:, 0]
    data = data[by_first_column]
    rank = np.empty(n, dtype=np.intp)
    rank[by_first_column] = np.arange(n)

    radius = _kth_neighbour_distance(data, k, workers)
    digamma_table = digamma(np.arange(1.0, n + 1.0))  # psi(count + 1) for count = 0 .. n - 1
    marginal_sum = 0.0
    for group in groups:
        if len(group) > 1:
            counts = _count_within(data[:, group], radius)
        elif group[0] == 0:
            counts = _count_within_column(data[:, 0], radius, order=None)
        else:
            counts = _count_within_column(data[:, group[0]], radius, order=rank[order[:, group[0]]])
        marginal_sum += float(np.sum(digamma_table[counts]))
    return float(digamma(k) + (len(groups) - 1) * digamma(n) - marginal_sum / n)


def _renumber(groups: list[list[int]]) -> list[list[int]]:
    renumbered, start = [], 0
    for group in groups:
        renumbered.append(list(range(start, start + len(group))))
        start += len(group)
    return renumbered


def knn_mutual_information(
    x: np.ndarray, y: np.ndarray, k: int = 3, jitter: float = 1e-10, seed: int = 0, workers: int = 1
) -> float:
    """Estimate I(x : y) in nats with the KSG estimator (algorithm 1); x and y may be vectors.

    The arguments after ``y`` are those of :func:`knn_total_correlation`.
    """
    first = _as_samples(x, minimum=2)
    second = _as_samples(y, minimum=2)
    if first.shape[0] != second.shape[0]:
        raise ConfigurationError(f"x and y need the same number of samples, got {first.shape[0]} and {second.shape[0]}")
    joint = np.concatenate([first, second], axis=1)
    groups = [list(range(first.shape[1])), list(range(first.shape[1], joint.shape[1]))]
    return knn_total_correlation(joint, groups, k=k, jitter=jitter, seed=seed, workers=workers)


def gaussian_total_correlation(samples: np.ndarray) -> float:
    """Return the plug-in TC of the sample covariance, in nats.

    NOTE: exact only for Gaussian data. For Gaussian data its bias is positive and close to
    d(d-1)/(4N) nats for independent columns, because sampling noise creates spurious correlations.
    """
    data = _as_samples(samples, minimum=3)
    return _gaussian_tc(np.cov(data, rowvar=False))


@dataclass(frozen=True)
class AggregatePosteriorMI:
    """Per-latent information estimates of a Gaussian encoder, each of shape (m,), in nats."""

    mutual_information: np.ndarray  # I(x : z_j) = H(z_j) - E_x H(z_j | x)
    marginal_entropy: np.ndarray  # H(z_j) under the aggregate posterior (Monte Carlo)
    conditional_entropy: np.ndarray  # E_x H(z_j | x) (exact average over the data set)
    standard_error: np.ndarray  # Monte Carlo standard error of H(z_j), hence of I(x : z_j)
    num_points: int  # N, the mixture size; every I(x : z_j) is at most ln N
    num_queries: int  # samples used for the Monte Carlo average


@torch.no_grad()
def aggregate_posterior_mi(
    mean: torch.Tensor | np.ndarray,
    log_variance: torch.Tensor | np.ndarray,
    num_queries: int | None = DEFAULT_NUM_QUERIES,
    chunk_elements: int | None = None,
    seed: int = 0,
) -> AggregatePosteriorMI:
    """Estimate I(x : z_j) for every latent j of a factorised Gaussian encoder, in nats.

    The data distribution is the empirical one over the N rows, so p(z_j) is the mixture
    1/N sum_n N(mu_nj, sigma_nj^2). H(z_j) is a Monte Carlo average of -ln p(z_j) at samples
    z_j ~ p(z_j | x_n), one per query point n, with each density summed over all N
    components; E_x H(z_j | x) is exact.

    Cost: num_queries x N x m Gaussian densities (see ``corex_edu.mixture_density``). On
    one core of the AMD EPYC machine described in benchmarks/README.md this took 1.0 to
    1.7 ns per density, depending on the load from other jobs, so 2,048 queries x 10,000
    points x 2,048 latents took 42 to 69 s, with a peak resident memory of 1.4 GiB for the
    whole Python process. Memory is a few float32 copies of the (N, m) inputs plus one
    cache-sized block per torch thread.

    Args:
        mean, log_variance: encoder outputs over the data set, shape (N, m).
        num_queries: query points for the Monte Carlo average, drawn without replacement;
            ``None`` or a value of at least N uses all N. The default, 2,048, bounds the
            cost for large N and gives a standard error near 0.016 nats per latent for
            near-Gaussian marginals; the returned ``standard_error`` gives the actual value.
        chunk_elements: float32 values in one (latents x queries x N) block; ``None`` picks
            1 MiB blocks on a CPU and 128 MiB blocks on other devices. Must be at least N.
        seed: seed for picking queries and drawing z.

    NOTE: because the estimate uses the same N points for the mixture and the queries, every
    I(x : z_j) is bounded by ln N; latents that identify single images saturate there.
    """
    mu, log_var = check_encoder_outputs(mean, log_variance)
    n = mu.shape[0]
    if chunk_elements is not None and chunk_elements < n:
        raise ConfigurationError(
            f"chunk_elements={chunk_elements} must be at least the number of data points {n}; raise it or pass None"
        )
    _, queries = draw_queries(mu, log_var, num_queries, seed)
    negative_log_density = -mixture_log_density(queries, mu, log_var, block_elements=chunk_elements).marginal
    q = queries.shape[0]

    marginal_entropy = negative_log_density.mean(dim=0)
    standard_error = negative_log_density.std(dim=0) / math.sqrt(q)
    conditional_entropy = 0.5 * (LOG_2_PI + 1.0 + log_var.double()).mean(dim=0)
    return AggregatePosteriorMI(
        mutual_information=(marginal_entropy - conditional_entropy).cpu().numpy(),
        marginal_entropy=marginal_entropy.cpu().numpy(),
        conditional_entropy=conditional_entropy.cpu().numpy(),
        standard_error=standard_error.cpu().numpy(),
        num_points=n,
        num_queries=q,
    )
