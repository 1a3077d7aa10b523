"""TC(z) estimators for factorised Gaussian encoders, checked against the closed form of linear-Gaussian encoders."""

import math

import numpy as np
import pytest
import torch

from corex_edu import estimators, gaussian, mixture_density, tc_estimators
from corex_edu.errors import ConfigurationError

LATENTS = 4
DATA_MODEL = gaussian.FactorModel.random(observed=8, factors=2, seed=0)
WEIGHTS = np.random.default_rng(1).standard_normal((LATENTS, 8)) / np.sqrt(8)


def linear_encoder(encoder_variance, n, seed):
    """Encoder outputs of q(z | x) = N(W x, diag(s^2)) on n samples of the factor model, and the population TC(z)."""
    return tc_estimators.linear_gaussian_encoder(DATA_MODEL.covariance, WEIGHTS, np.full(LATENTS, encoder_variance), n, seed=seed)


def independent_encoder(n, sigma=0.5, seed=7):
    """Means ~ N(0, I) and a fixed encoder noise, so the latents are independent and TC(z) = 0."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, LATENTS, generator=generator, dtype=torch.float64)
    log_variance = torch.full((n, LATENTS), 2 * math.log(sigma), dtype=torch.float64)
    return mean, log_variance


def exact_log_densities(queries, mean, log_variance):
    """Float64 log-sum-exp over every component: ln q(z_j) of shape (Q, m) and ln q(z) of shape (Q,)."""
    z, mu, log_var = queries.double()[:, None, :], mean.double()[None], log_variance.double()[None]
    components = -0.5 * (mixture_density.LOG_2_PI + log_var) - 0.5 * (z - mu).square() * torch.exp(-log_var)
    n = mean.shape[0]
    return torch.logsumexp(components, dim=1) - math.log(n), torch.logsumexp(components.sum(dim=2), dim=1) - math.log(n)


def test_kernel_matches_float64_logsumexp():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(700, 5, generator=generator) * 3
    log_variance = torch.randn(700, 5, generator=generator) * 2 - 3
    queries = mean[:90] + torch.exp(0.5 * log_variance[:90]) * torch.randn(90, 5, generator=generator)
    result = mixture_density.mixture_log_density(queries, mean, log_variance, joint=True, block_elements=1_000)
    marginal, joint = exact_log_densities(queries, mean, log_variance)
    assert torch.allclose(result.marginal, marginal, atol=1e-4)
    assert torch.allclose(result.joint, joint, atol=1e-4)


def test_kernel_recomputes_underflowed_sums():
    # The query lies 25 standard deviations from every component, so each float32 term
    # exp(-t^2) underflows to zero and the float64 path has to take over.
    mean = torch.tensor([[0.0], [5.0]])
    log_variance = torch.zeros(2, 1)
    queries = torch.tensor([[30.0]])
    result = mixture_density.mixture_log_density(queries, mean, log_variance)
    marginal, _ = exact_log_densities(queries, mean, log_variance)
    assert torch.isfinite(result.marginal).all()
    assert torch.allclose(result.marginal, marginal, atol=1e-6)


def test_kernel_split_covers_every_query():
    ranges = []
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        mixture_density._run_split(lambda first, stop: ranges.append((first, stop)), count=10, step=3, parallel=True)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)
    covered = sorted(index for first, stop in ranges for index in range(first, stop))
    assert covered == list(range(10))
    assert all(first % 3 == 0 for first, _ in ranges)
    assert len(ranges) == 3


def test_kernel_threads_give_same_result():
    generator = torch.Generator().manual_seed(1)
    mean = torch.randn(50, 3, generator=generator)
    log_variance = torch.randn(50, 3, generator=generator) - 1
    queries = mean[:20] + torch.randn(20, 3, generator=generator)
    serial = mixture_density.mixture_log_density(queries, mean, log_variance, joint=True, block_elements=100)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        split = mixture_density.mixture_log_density(queries, mean, log_variance, joint=True, block_elements=100)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(split.marginal, serial.marginal)
    assert torch.equal(split.joint, serial.joint)


def test_mixture_tc_matches_closed_form():
    mean, log_variance, truth = linear_encoder(1.0, 4_000, seed=0)
    estimate = tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=None)
    assert abs(estimate.total_correlation - truth) < 0.03
    assert estimate.standard_error < 0.01
    assert estimate.num_queries == 4_000


def test_mixture_tc_excess_shrinks_with_n():
    # With encoder noise small next to the spread of the means, the empirical mixture of N
    # bumps has more TC than the population. The excess is positive and falls as N grows.
    excess = []
    for n in (500, 4_000):
        mean, log_variance, truth = linear_encoder(0.1, n, seed=1)
        excess.append(tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=None).total_correlation - truth)
    assert excess[0] > 0
    assert excess[1] < excess[0]
    assert excess[1] < 0.1


def test_mixture_tc_of_independent_latents():
    mean, log_variance = independent_encoder(4_000)
    estimate = tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=None)
    assert abs(estimate.total_correlation) < 0.04


def test_mixture_tc_query_subsampling():
    mean, log_variance, _ = linear_encoder(1.0, 3_000, seed=2)
    full = tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=None)
    subsampled = tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=300)
    assert subsampled.num_queries == 300
    assert subsampled.standard_error > full.standard_error
    assert abs(subsampled.total_correlation - full.total_correlation) < 4 * subsampled.standard_error


def test_mixture_tc_default_query_count():
    mean, log_variance, _ = linear_encoder(1.0, 3_000, seed=3)
    estimate = tc_estimators.mixture_total_correlation(mean, log_variance)
    assert estimate.num_queries == mixture_density.DEFAULT_NUM_QUERIES


def test_mixture_tc_is_deterministic():
    mean, log_variance, _ = linear_encoder(1.0, 1_000, seed=4)
    first = tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=200, seed=5)
    second = tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=200, seed=5)
    other = tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=200, seed=6)
    assert first.total_correlation == second.total_correlation
    assert other.total_correlation != first.total_correlation


def test_knn_tc_of_aggregate_posterior():
    estimates, truth = [], None
    for seed in range(3):
        mean, log_variance, truth = linear_encoder(1.0, 4_000, seed=seed)
        samples = tc_estimators.sample_aggregate_posterior(mean, log_variance, seed=seed)
        estimates.append(estimators.knn_total_correlation(samples, k=3))
    assert abs(np.mean(estimates) - truth) < 0.05


def test_mws_offset_near_log_n():
    # Overlapping batch components: every MWS density is about q / N, so TC gains (m - 1) ln N.
    mean, log_variance = independent_encoder(4_000)
    offset = (LATENTS - 1) * math.log(4_000)
    residuals = [tc_estimators.minibatch_weighted_total_correlation(mean, log_variance, batch_size).total_correlation - offset for batch_size in (32, 256, 1_024)]
    assert residuals[0] > 0
    assert residuals[0] < 1.0
    assert residuals[1] < residuals[0]
    assert residuals[2] < residuals[1]
    assert residuals[2] < 0.15


def test_mws_above_closed_form():
    mean, log_variance, truth = linear_encoder(1.0, 4_000, seed=0)
    estimate = tc_estimators.minibatch_weighted_total_correlation(mean, log_variance, batch_size=256)
    offset = (LATENTS - 1) * math.log(4_000)
    assert estimate.total_correlation - truth > offset
    assert estimate.total_correlation - truth < offset + 0.5


def test_mss_negative_for_independent_latents():
    mean, log_variance = independent_encoder(4_000)
    small_batch = tc_estimators.minibatch_stratified_total_correlation(mean, log_variance, batch_size=32)
    assert small_batch.total_correlation < 0
    assert small_batch.total_correlation > -1.0


def test_mss_bias_shrinks_with_batch_size():
    mean, log_variance, truth = linear_encoder(1.0, 4_000, seed=0)
    bias = [tc_estimators.minibatch_stratified_total_correlation(mean, log_variance, batch_size).total_correlation - truth for batch_size in (32, 256, 1_024)]
    assert bias[0] < 0
    assert bias[0] < bias[1]
    assert bias[1] < bias[2]
    assert abs(bias[2]) < 0.03


def test_mss_density_estimate_is_unbiased():
    # For a fixed z_1 ~ q(z | x_1) and batches of x_1 plus M - 1 other rows drawn uniformly,
    # the mean of the stratified estimate of q(z_1) is the mixture density q(z_1).
    n, batch_size, draws = 40, 6, 4_000
    mean, log_variance = independent_encoder(n, seed=8)
    z = mean[:1] + torch.exp(0.5 * log_variance[:1]) * torch.randn(1, LATENTS, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    rng = np.random.default_rng(10)
    estimates = []
    for _ in range(draws):
        rows = np.concatenate([[0], 1 + rng.choice(n - 1, size=batch_size - 1, replace=False)])
        batch_z = torch.cat([z, mean[rows[1:]]])  # only row 0's densities are used below
        log_joint, _ = tc_estimators.minibatch_log_densities(batch_z, mean[rows], log_variance[rows], n, stratified=True)
        estimates.append(float(torch.exp(log_joint[0])))
    _, exact_joint = exact_log_densities(z, mean, log_variance)
    exact = float(torch.exp(exact_joint[0]))
    standard_error = np.std(estimates) / np.sqrt(draws)
    assert abs(np.mean(estimates) - exact) < 4 * standard_error


def test_stratified_weights_sum_to_one():
    weights = torch.exp(tc_estimators._log_weight_matrix(8, 100, stratified=True, dtype=torch.float64, device=torch.device("cpu")))
    assert torch.allclose(weights.sum(dim=1), torch.ones(8, dtype=torch.float64))
    assert torch.allclose(torch.diagonal(weights), torch.full((8,), 0.01, dtype=torch.float64))


def test_minibatch_densities_have_gradients():
    mean = torch.randn(16, 3, requires_grad=True)
    log_variance = torch.zeros(16, 3, requires_grad=True)
    z = mean + torch.exp(0.5 * log_variance) * torch.randn(16, 3)
    log_joint, log_marginal = tc_estimators.minibatch_log_densities(z, mean, log_variance, dataset_size=1_000, stratified=True)
    (log_joint - log_marginal.sum(dim=1)).mean().backward()
    assert mean.grad is not None
    assert torch.isfinite(log_variance.grad).all()


def test_minibatch_tc_is_deterministic():
    mean, log_variance, _ = linear_encoder(1.0, 1_000, seed=4)
    first = tc_estimators.minibatch_stratified_total_correlation(mean, log_variance, batch_size=100, seed=3)
    second = tc_estimators.minibatch_stratified_total_correlation(mean, log_variance, batch_size=100, seed=3)
    assert first.total_correlation == second.total_correlation
    assert first.batch_size == 100
    assert first.num_queries == 1_000


def test_sample_aggregate_posterior_is_deterministic():
    mean, log_variance, _ = linear_encoder(1.0, 100, seed=4)
    first = tc_estimators.sample_aggregate_posterior(mean, log_variance, seed=1)
    second = tc_estimators.sample_aggregate_posterior(mean, log_variance, seed=1)
    assert first.shape == (100, LATENTS)
    assert np.array_equal(first, second)


def test_tc_estimator_input_errors():
    mean, log_variance, _ = linear_encoder(1.0, 50, seed=0)
    with pytest.raises(ConfigurationError, match="batch_size must be an integer of at least 2, got 1"):
        tc_estimators.minibatch_weighted_total_correlation(mean, log_variance, batch_size=1)
    with pytest.raises(ConfigurationError, match="N=50 must be an integer of at least the batch size M=64"):
        tc_estimators.minibatch_stratified_total_correlation(mean, log_variance, batch_size=64)
    with pytest.raises(ConfigurationError, match="at least 2 latents, got m=1"):
        tc_estimators.mixture_total_correlation(mean[:, :1], log_variance[:, :1])
    with pytest.raises(ConfigurationError, match=r"shape \(N, m\), got \(50, 4\) and \(50, 3\)"):
        tc_estimators.mixture_total_correlation(mean, log_variance[:, :3])
    with pytest.raises(ConfigurationError, match="num_queries must be at least 2, got 1"):
        tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=1)
    with pytest.raises(ConfigurationError, match="num_queries must be an integer or None, got 2.5"):
        tc_estimators.mixture_total_correlation(mean, log_variance, num_queries=2.5)
    with pytest.raises(ConfigurationError, match="block size 10 must be at least the number of data points N=50"):
        tc_estimators.mixture_total_correlation(mean, log_variance, chunk_elements=10)
    with pytest.raises(ConfigurationError, match=r"share one shape \(M, m\)"):
        tc_estimators.minibatch_log_densities(torch.zeros(4, 2), torch.zeros(4, 3), torch.zeros(4, 3), 10, stratified=False)
