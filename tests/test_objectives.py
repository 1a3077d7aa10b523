import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from corex_edu.errors import ConfigurationError
from corex_edu.models import BernoulliDecoder, CorExAutoencoder, GaussianDecoder, GaussianEncoder, GaussianPrior
from corex_edu.objectives import anchor_weights, bernoulli_marginal_entropies, corex_bound, kl_weight_vector, vae_elbo


def small_bernoulli_vae(seed=0):
    torch.manual_seed(seed)
    return CorExAutoencoder(GaussianEncoder(20, 4, hidden=(16,)), BernoulliDecoder(4, 20, hidden=(16,))).double()


def binary_batch(n=64, d=20, seed=0):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) > 0.6).double()


def test_bound_equals_entropy_plus_elbo():
    model, x = small_bernoulli_vae(), binary_batch()
    entropy_sum = float(bernoulli_marginal_entropies(x).sum())
    terms = corex_bound(model, x, entropy_sum, generator=torch.Generator().manual_seed(1))
    elbo = vae_elbo(model, x, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(terms.bound, entropy_sum + elbo, atol=1e-10, rtol=0)
    assert torch.allclose(terms.elbo, elbo, atol=1e-10, rtol=0)


def test_kl_per_latent_matches_torch_distributions():
    prior = GaussianPrior(3).double()
    with torch.no_grad():
        prior.loc.copy_(torch.tensor([0.5, -1.0, 0.0]))
        prior.log_variance.copy_(torch.tensor([0.0, 1.0, -2.0]))
    mean = torch.randn(10, 3, dtype=torch.float64)
    log_variance = torch.randn(10, 3, dtype=torch.float64)
    expected = kl_divergence(Normal(mean, (0.5 * log_variance).exp()), Normal(prior.loc, (0.5 * prior.log_variance).exp()))
    assert torch.allclose(prior.kl_divergence(mean, log_variance), expected, atol=1e-12)


def test_gaussian_decoder_log_likelihood_matches_normal():
    decoder = GaussianDecoder(2, 5, hidden=()).double()
    with torch.no_grad():
        decoder.log_variance.copy_(torch.linspace(-1, 1, 5, dtype=torch.float64))
    z, x = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    location = decoder(z)
    expected = Normal(location, (0.5 * decoder.log_variance).exp()).log_prob(x)
    assert torch.allclose(decoder.log_likelihood(x, location), expected, atol=1e-12)


def test_kl_weights_scale_only_their_latent():
    model, x = small_bernoulli_vae(), binary_batch()
    weights = anchor_weights(4, [0], strength=0.5)
    plain = corex_bound(model, x, generator=torch.Generator().manual_seed(0))
    anchored = corex_bound(model, x, kl_weights=weights, generator=torch.Generator().manual_seed(0))
    expected = plain.bound + 0.5 * plain.kl_per_latent[:, 0]
    assert torch.allclose(anchored.bound, expected, atol=1e-10)
    assert torch.allclose(anchored.elbo, plain.elbo, atol=1e-10)


def test_bound_term_signs():
    terms = corex_bound(small_bernoulli_vae(), binary_batch())
    assert (terms.kl_per_latent >= 0).all()
    assert (terms.reconstruction <= 0).all()
    assert terms.kl_per_latent.shape == (64, 4)


def test_kl_weight_validation():
    assert torch.equal(kl_weight_vector(3), torch.ones(3))
    assert torch.equal(kl_weight_vector(3, 0.5), torch.full((3,), 0.5))
    with pytest.raises(ConfigurationError, match="3 entries"):
        kl_weight_vector(3, [1.0, 1.0])
    with pytest.raises(ConfigurationError, match="non-negative"):
        kl_weight_vector(2, [1.0, -0.1])
    with pytest.raises(ConfigurationError, match="lambda"):
        anchor_weights(4, [0], strength=1.5)
    with pytest.raises(ConfigurationError, match="anchored"):
        anchor_weights(4, [7], strength=0.5)


def test_bernoulli_marginal_entropies():
    data = torch.tensor([[0, 1, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.float32)
    entropies = bernoulli_marginal_entropies(data)
    assert entropies[0] == pytest.approx(np.log(2), rel=1e-12)
    assert entropies[1] == 0.0
    assert entropies[2] == pytest.approx(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)), rel=1e-12)


def test_bernoulli_marginal_entropies_rejects_grey_values():
    with pytest.raises(ConfigurationError, match="binary"):
        bernoulli_marginal_entropies(torch.tensor([[0.2, 1.0]]))


def test_model_argument_validation():
    with pytest.raises(ConfigurationError, match="latent_dim"):
        GaussianEncoder(10, 0)
    with pytest.raises(ConfigurationError, match="variance"):
        GaussianEncoder(10, 2, variance="diagonal")
    with pytest.raises(ConfigurationError, match="prior"):
        CorExAutoencoder(GaussianEncoder(10, 2), BernoulliDecoder(2, 10), GaussianPrior(3))
