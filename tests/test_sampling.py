"""Latent samplers against the exact moments and CDF of the aggregate-posterior mixture."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from corex_edu import sampling
from corex_edu.errors import ConfigurationError


def encoder_outputs(n=40, m=3, seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(scale=1.5, size=(n, m))
    log_variance = rng.normal(loc=-1.0, scale=0.5, size=(n, m))
    return mean, log_variance


def correlated_encoder_outputs(n=60, seed=1):
    """Means whose two columns are almost identical (correlation about 0.99)."""
    rng = np.random.default_rng(seed)
    first = rng.normal(scale=2.0, size=n)
    mean = np.stack([first, first + rng.normal(scale=0.2, size=n)], axis=1)
    return mean, np.full((n, 2), np.log(0.1))


def mixture_cdf(values, mean, log_variance):
    """Exact CDF of 1/N sum_n N(mean_n, exp(log_variance_n)) at each entry of ``values``."""
    return norm.cdf((values[:, None] - mean[None, :]) / np.exp(0.5 * log_variance)[None, :]).mean(axis=1)


def test_marginal_variance_direct_formula():
    mean, log_variance = encoder_outputs()
    variance = np.exp(log_variance)
    second_moment = (variance + mean**2).mean(axis=0)
    expected = second_moment - mean.mean(axis=0) ** 2
    assert np.allclose(sampling.aggregate_marginal_variance(mean, log_variance), expected, rtol=1e-12)


def test_marginal_moments_accept_torch():
    mean, log_variance = encoder_outputs()
    from_torch = sampling.aggregate_marginal_variance(torch.from_numpy(mean).float(), torch.from_numpy(log_variance).float())
    assert from_torch.shape == (3,)
    assert from_torch.dtype == np.float64
    assert np.allclose(from_torch, sampling.aggregate_marginal_variance(mean, log_variance), rtol=1e-5)
    assert np.allclose(sampling.aggregate_marginal_mean(torch.from_numpy(mean)), mean.mean(axis=0), rtol=1e-12)


def test_marginal_variance_single_point():
    variance = sampling.aggregate_marginal_variance([[3.0, -1.0]], [[np.log(0.5), 0.0]])
    assert np.allclose(variance, [0.5, 1.0])


def test_aggregate_sampler_matches_moments():
    mean, log_variance = encoder_outputs()
    codes = sampling.AggregatePosteriorSampler(mean, log_variance).sample(200_000, seed=0).double().numpy()
    assert codes.shape == (200_000, 3)
    assert np.allclose(codes.mean(axis=0), sampling.aggregate_marginal_mean(mean), atol=0.02)
    assert np.allclose(codes.var(axis=0), sampling.aggregate_marginal_variance(mean, log_variance), rtol=0.02)


def test_aggregate_sampler_matches_mixture_cdf():
    mean, log_variance = encoder_outputs()
    codes = sampling.AggregatePosteriorSampler(mean, log_variance).sample(50_000, seed=1).double().numpy()
    for latent in range(3):
        ordered = np.sort(codes[:, latent])
        empirical = np.arange(1, ordered.size + 1) / ordered.size
        largest_gap = np.abs(empirical - mixture_cdf(ordered, mean[:, latent], log_variance[:, latent])).max()
        # The asymptotic Kolmogorov-Smirnov 1% critical value at n = 50,000 is 1.63 / sqrt(n) = 0.0073.
        assert largest_gap < 0.0073, f"latent {latent}"


def test_aggregate_sampler_dimensions_independent():
    mean, log_variance = correlated_encoder_outputs()
    assert np.corrcoef(mean.T)[0, 1] > 0.95
    codes = sampling.AggregatePosteriorSampler(mean, log_variance).sample(100_000, seed=2).double().numpy()
    # The standard error of a correlation at n = 100,000 is 0.0032.
    assert abs(np.corrcoef(codes.T)[0, 1]) < 0.015


def test_aggregate_sampler_blocks_match_moments(monkeypatch):
    monkeypatch.setattr(sampling, "_INDEX_BLOCK_ELEMENTS", 7)
    mean, log_variance = encoder_outputs(m=3)
    codes = sampling.AggregatePosteriorSampler(mean, log_variance).sample(20_001, seed=3).double().numpy()
    assert codes.shape == (20_001, 3)
    assert np.allclose(codes.var(axis=0), sampling.aggregate_marginal_variance(mean, log_variance), rtol=0.05)


def test_prior_sampler_moments():
    codes = sampling.PriorSampler(4).sample(100_000, seed=0).double().numpy()
    assert codes.shape == (100_000, 4)
    assert np.allclose(codes.mean(axis=0), 0.0, atol=0.015)
    assert np.allclose(np.cov(codes, rowvar=False), np.eye(4), atol=0.02)


@pytest.mark.parametrize("sampler", [sampling.PriorSampler(3), sampling.AggregatePosteriorSampler(*encoder_outputs())], ids=["prior", "aggregate"])
def test_sampler_seed_repeats(sampler):
    assert torch.equal(sampler.sample(50, seed=7), sampler.sample(50, seed=7))
    assert not torch.equal(sampler.sample(50, seed=7), sampler.sample(50, seed=8))
    generator = torch.Generator().manual_seed(7)
    assert torch.equal(sampler.sample(50, seed=generator), sampler.sample(50, seed=7))


def three_clusters(n_per_cluster=300, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    spread = np.array([0.5, 1.0, 0.3])
    points = np.concatenate([centre + scale * rng.standard_normal((n_per_cluster, 2)) for centre, scale in zip(centres, spread)])
    return points, centres, spread


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_mixture_recovers_clusters(covariance):
    points, centres, spread = three_clusters()
    sampler = sampling.GaussianMixtureSampler(points, components=3, covariance=covariance, seed=0)
    order = np.argsort(sampler.component_means[:, 0].numpy() + 2 * sampler.component_means[:, 1].numpy())
    assert sampler.converged
    assert np.allclose(sampler.component_means.numpy()[order], centres, atol=0.15)
    assert np.allclose(sampler.weights.numpy(), 1 / 3, atol=0.01)
    standard_deviations = np.sqrt(np.diagonal(sampler.component_covariances.numpy()[order], axis1=1, axis2=2))
    assert np.allclose(standard_deviations, spread[:, None], rtol=0.15)


def test_mixture_samples_follow_clusters():
    points, centres, _ = three_clusters()
    codes = sampling.GaussianMixtureSampler(points, components=3, seed=0).sample(30_000, seed=1).double().numpy()
    nearest = np.argmin(((codes[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    assert np.allclose(np.bincount(nearest, minlength=3) / codes.shape[0], 1 / 3, atol=0.02)
    cluster_two = codes[nearest == 2]
    assert np.allclose(cluster_two.std(axis=0), 0.3, rtol=0.1)


def test_mixture_name_and_shape():
    points, _, _ = three_clusters(n_per_cluster=50)
    sampler = sampling.GaussianMixtureSampler(torch.from_numpy(points), components=2, covariance="diagonal")
    assert sampler.name == "Gaussian mixture on posterior means (K=2, diagonal covariance)"
    assert sampler.sample(5, seed=0).shape == (5, 2)
    assert sampler.sample(5, seed=0).dtype == torch.float32


def test_shape_mismatch_names_fix():
    mean, log_variance = encoder_outputs()
    with pytest.raises(ConfigurationError, match=r"same shape \(N, m\), got \(40, 3\) and \(40, 2\)"):
        sampling.AggregatePosteriorSampler(mean, log_variance[:, :2])


def test_flat_mean_rejected():
    with pytest.raises(ConfigurationError, match=r"shape \(N, m\), got shape \(5,\)"):
        sampling.aggregate_marginal_mean(np.zeros(5))


def test_nan_mean_rejected():
    mean, log_variance = encoder_outputs()
    mean[3, 1] = np.nan
    with pytest.raises(ConfigurationError, match="mean contains 1 NaN or infinite values"):
        sampling.aggregate_marginal_variance(mean, log_variance)


@pytest.mark.parametrize("num", [0, -3, 2.5, True])
def test_bad_sample_count_rejected(num):
    with pytest.raises(ConfigurationError, match=f"num must be a positive integer, got {num!r}"):
        sampling.PriorSampler(2).sample(num)


def test_bad_seed_rejected():
    with pytest.raises(ConfigurationError, match="seed must be an int"):
        sampling.PriorSampler(2).sample(3, seed="7")


def test_too_many_components_rejected():
    with pytest.raises(ConfigurationError, match="components=11 exceeds the 10 posterior means; use at most 10"):
        sampling.GaussianMixtureSampler(np.zeros((10, 2)), components=11)


def test_unknown_covariance_rejected():
    with pytest.raises(ConfigurationError, match="covariance must be 'full' or 'diagonal', got 'spherical'"):
        sampling.GaussianMixtureSampler(np.random.default_rng(0).normal(size=(20, 2)), components=2, covariance="spherical")
