"""Estimator accuracy against closed forms, with the tolerances stated at fixed sample sizes."""

import numpy as np
import pytest
import torch
from scipy.special import digamma

from corex_edu import estimators, gaussian
from corex_edu.errors import ConfigurationError

RHO_09_TC = -0.5 * np.log(1 - 0.81)


def gaussian_samples(covariance, n, seed):
    return np.random.default_rng(seed).multivariate_normal(np.zeros(len(covariance)), covariance, size=n)


@pytest.mark.parametrize("n, tolerance", [(1_000, 0.05), (10_000, 0.02)])
def test_knn_mi_rho_09_mean_over_seeds(n, tolerance):
    estimates = [estimators.knn_mutual_information(*gaussian_samples(gaussian.correlated_pair(0.9), n, seed).T, k=3) for seed in range(5)]
    assert abs(np.mean(estimates) - RHO_09_TC) < tolerance
    assert np.std(estimates) < 2.5 * tolerance


def test_knn_tc_independent_is_near_zero():
    samples = gaussian_samples(np.eye(3), 5_000, seed=0)
    assert abs(estimators.knn_total_correlation(samples)) < 0.03


def test_knn_tc_three_dimensions():
    covariance = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    estimate = estimators.knn_total_correlation(gaussian_samples(covariance, 5_000, seed=1))
    assert abs(estimate - gaussian.total_correlation(covariance)) < 0.05


def test_knn_mi_between_vector_groups():
    model = gaussian.FactorModel.random(observed=4, factors=1, seed=0)
    samples = model.sample(5_000, seed=2)
    expected = gaussian.mutual_information(model.covariance, [0, 1], [2, 3])
    assert abs(estimators.knn_mutual_information(samples[:, :2], samples[:, 2:]) - expected) < 0.06


def test_one_dimensional_counts_match_tree_counts():
    samples = gaussian_samples(gaussian.correlated_pair(0.5), 500, seed=3)
    radius = np.full(500, 0.3)
    sorted_counts = estimators._count_within(samples[:, :1], radius)
    tree_counts = estimators._count_within(np.c_[samples[:, :1], np.zeros(500)], radius)
    assert np.array_equal(sorted_counts, tree_counts)


def brute_force_ksg(samples, groups, k):
    """KSG algorithm 1 from the full matrix of max-norm distances, O(n^2) memory."""
    n = len(samples)
    joint = np.max(np.abs(samples[:, None, :] - samples[None, :, :]), axis=2)
    radius = np.sort(joint, axis=1)[:, k]  # column 0 is the point itself
    marginal = 0.0
    for group in groups:
        distances = np.max(np.abs(samples[:, None, group] - samples[None, :, group]), axis=2)
        counts = np.sum(distances < radius[:, None], axis=1) - 1
        marginal += np.mean(digamma(counts + 1))
    return digamma(k) + (len(groups) - 1) * digamma(n) - marginal


@pytest.mark.parametrize("groups", [[[0], [1], [2], [3]], [[2], [0, 3], [1]], [[3, 1], [0, 2]]])
def test_knn_tc_equals_brute_force_ksg(groups):
    samples = gaussian.FactorModel.random(observed=4, factors=1, seed=0).sample(300, seed=9)
    expected = brute_force_ksg(samples, groups, k=4)
    assert estimators.knn_total_correlation(samples, groups, k=4) == pytest.approx(expected, abs=1e-12)


def test_knn_entropy_of_gaussian():
    covariance = gaussian.correlated_pair(0.5) * 2.0
    estimate = estimators.knn_entropy(gaussian_samples(covariance, 5_000, seed=4))
    assert abs(estimate - gaussian.entropy(covariance)) < 0.05


def test_gaussian_plug_in_tc():
    estimate = estimators.gaussian_total_correlation(gaussian_samples(gaussian.correlated_pair(0.9), 10_000, seed=5))
    assert abs(estimate - RHO_09_TC) < 0.02


def test_duplicate_points_do_not_break_knn():
    samples = np.repeat(gaussian_samples(gaussian.correlated_pair(0.8), 300, seed=6), 3, axis=0)
    assert np.isfinite(estimators.knn_total_correlation(samples))


def test_knn_uses_distinct_data_unchanged():
    # Without repeated values no jitter is added, so the seed cannot change the estimate.
    samples = gaussian_samples(gaussian.correlated_pair(0.8), 1_000, seed=6)
    assert estimators.knn_total_correlation(samples, seed=1) == estimators.knn_total_correlation(samples, seed=2)


def test_knn_jitter_is_seeded():
    samples = np.round(gaussian_samples(gaussian.correlated_pair(0.8), 1_000, seed=6), 1)
    first = estimators.knn_total_correlation(samples, seed=1)
    assert estimators.knn_total_correlation(samples, seed=1) == first
    assert estimators.knn_total_correlation(samples, seed=2) != first


def test_knn_threads_give_same_result():
    model = gaussian.FactorModel.random(observed=6, factors=2, seed=0)
    samples = model.sample(2_000, seed=3)
    groups = [[0, 1], [2], [3, 4, 5]]
    serial = estimators.knn_total_correlation(samples, groups, workers=1)
    assert estimators.knn_total_correlation(samples, groups, workers=-1) == serial
    assert estimators.knn_total_correlation(samples, groups, workers=2) == serial


def test_estimator_input_errors():
    with pytest.raises(ConfigurationError, match="k must be smaller"):
        estimators.knn_total_correlation(np.zeros((3, 2)), k=3)
    with pytest.raises(ConfigurationError, match="NaN"):
        estimators.knn_entropy(np.array([[0.0], [np.nan], [1.0]]))
    with pytest.raises(ConfigurationError, match="two non-empty groups"):
        estimators.knn_total_correlation(np.zeros((10, 2)), groups=[[0, 1]])
    with pytest.raises(ConfigurationError, match="same number"):
        estimators.knn_mutual_information(np.zeros(10), np.zeros(9))
    with pytest.raises(ConfigurationError, match="workers must be a positive number of threads or -1 for every core, got workers=0"):
        estimators.knn_mutual_information(np.arange(10.0), np.arange(10.0), workers=0)


def encoder_outputs(n, sigmas, seed=123):  # not 0, the estimator's own noise seed
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, len(sigmas), generator=generator)
    log_variance = torch.log(torch.tensor(sigmas) ** 2).expand(n, -1).clone()
    return mean, log_variance


def test_aggregate_mi_matches_gaussian_channel():
    # mu ~ N(0, 1) and z = mu + sigma * eps: I(x : z) = 1/2 ln(1 + 1 / sigma^2).
    sigmas = [0.3, 1.0, 2.0]
    mean, log_variance = encoder_outputs(4_000, sigmas)
    result = estimators.aggregate_posterior_mi(mean, log_variance, num_queries=None)
    expected = 0.5 * np.log(1 + 1 / np.array(sigmas) ** 2)
    assert np.all(np.abs(result.mutual_information - expected) < 0.05)
    assert np.all(result.standard_error < 0.03)
    assert result.num_queries == 4_000
    assert result.num_points == 4_000


def test_aggregate_mi_default_query_count():
    mean, log_variance = encoder_outputs(3_000, [0.5, 1.0])
    assert estimators.aggregate_posterior_mi(mean, log_variance).num_queries == estimators.DEFAULT_NUM_QUERIES
    assert estimators.aggregate_posterior_mi(mean[:1_000], log_variance[:1_000]).num_queries == 1_000


def test_aggregate_mi_is_deterministic():
    mean, log_variance = encoder_outputs(1_000, [0.5, 1.0])
    first = estimators.aggregate_posterior_mi(mean, log_variance, num_queries=300, seed=4)
    second = estimators.aggregate_posterior_mi(mean, log_variance, num_queries=300, seed=4)
    assert np.array_equal(first.mutual_information, second.mutual_information)


def test_aggregate_mi_chunking_does_not_change_result():
    mean, log_variance = encoder_outputs(500, [0.5, 1.0, 1.5, 0.2])
    whole = estimators.aggregate_posterior_mi(mean, log_variance, chunk_elements=10**8)
    chunked = estimators.aggregate_posterior_mi(mean, log_variance, chunk_elements=700)
    assert np.allclose(whole.mutual_information, chunked.mutual_information, atol=1e-5)


def test_aggregate_mi_query_subsampling():
    mean, log_variance = encoder_outputs(3_000, [0.5])
    full = estimators.aggregate_posterior_mi(mean, log_variance, num_queries=None)
    subsampled = estimators.aggregate_posterior_mi(mean, log_variance, num_queries=500)
    assert subsampled.num_queries == 500
    assert subsampled.standard_error[0] > full.standard_error[0]
    assert abs(subsampled.mutual_information[0] - full.mutual_information[0]) < 4 * subsampled.standard_error[0] + 0.01


def test_aggregate_mi_is_bounded_by_log_n():
    mean, log_variance = encoder_outputs(200, [1e-4])
    result = estimators.aggregate_posterior_mi(mean, log_variance)
    assert result.mutual_information[0] <= np.log(200) + 1e-3
    assert result.mutual_information[0] > np.log(200) - 4 * result.standard_error[0]


def test_aggregate_mi_input_errors():
    with pytest.raises(ConfigurationError, match="shape"):
        estimators.aggregate_posterior_mi(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ConfigurationError, match="NaN"):
        estimators.aggregate_posterior_mi(torch.full((5, 2), float("nan")), torch.zeros(5, 2))
    with pytest.raises(ConfigurationError, match="num_queries"):
        estimators.aggregate_posterior_mi(torch.zeros(5, 2), torch.zeros(5, 2), num_queries=1)
