import math

import numpy as np
import pytest
import torch

from corex_edu import mnist_stacked
from corex_edu.errors import ConfigurationError
from corex_edu.stacked import (
    CategoricalLayer,
    GaussianLayer,
    StackedCorEx,
    full_gaussian_expected_log_density,
    gaussian_expected_log_density,
)
from corex_edu.training import TrainConfig


def _kl_diagonal(mean, log_variance, target_mean, target_log_variance):
    q = torch.distributions.Normal(mean, torch.exp(0.5 * log_variance))
    p = torch.distributions.Normal(target_mean, torch.exp(0.5 * target_log_variance))
    return torch.distributions.kl_divergence(q, p).sum(-1)


def test_expected_log_density_closed_form():
    torch.manual_seed(0)
    mean, log_variance = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    target_mean, target_log_variance = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    entropy = 0.5 * (math.log(2 * math.pi) + 1 + log_variance).sum(-1)
    expected = -_kl_diagonal(mean, log_variance, target_mean, target_log_variance) - entropy
    got = gaussian_expected_log_density(mean, log_variance, target_mean, target_log_variance)
    assert torch.allclose(got, expected, atol=1e-10)


def test_full_covariance_matches_torch():
    torch.manual_seed(1)
    mean, log_variance = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    target_mean = torch.randn(2, 3, dtype=torch.float64)
    factor = torch.randn(2, 3, 3, dtype=torch.float64)
    covariance = factor @ factor.transpose(-1, -2) + 0.5 * torch.eye(3, dtype=torch.float64)
    scale_tril = torch.linalg.cholesky(covariance)
    got = full_gaussian_expected_log_density(mean, log_variance, target_mean, scale_tril)
    for k in range(2):
        q = torch.distributions.MultivariateNormal(mean, torch.diag_embed(log_variance.exp()))
        p = torch.distributions.MultivariateNormal(target_mean[k], scale_tril=scale_tril[k])
        expected = -torch.distributions.kl_divergence(q, p) - q.entropy()
        assert torch.allclose(got[:, k], expected, atol=1e-10)


def test_full_equals_diagonal_for_diagonal_factor():
    torch.manual_seed(2)
    mean, log_variance = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    target_mean, target_log_variance = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    scale_tril = torch.diag_embed(torch.exp(0.5 * target_log_variance))
    full = full_gaussian_expected_log_density(mean, log_variance, target_mean, scale_tril)
    diagonal = gaussian_expected_log_density(mean[:, None], log_variance[:, None], target_mean[None], target_log_variance[None])
    assert torch.allclose(full, diagonal, atol=1e-10)


def test_single_layer_bound_is_vae_elbo():
    torch.manual_seed(3)
    model = StackedCorEx(12, [GaussianLayer(3, (8,))]).double()
    x = (torch.rand(7, 12, dtype=torch.float64) > 0.5).double()
    terms = model.bound(x, marginal_entropy_sum=2.5, generator=torch.Generator().manual_seed(0))
    mean, log_variance = model.encoders[0](x)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(0), dtype=mean.dtype)
    logits = model.decode_x_logits(mean + torch.exp(0.5 * log_variance) * noise)
    reconstruction = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = -0.5 * (1 + log_variance - mean.square() - log_variance.exp()).sum(1)
    assert torch.allclose(terms.elbo(), (reconstruction - kl).mean(), atol=1e-10)
    assert torch.allclose(terms.bound(), 2.5 + (reconstruction - kl).mean(), atol=1e-10)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
@torch.no_grad()
def test_categorical_term_is_exact_expectation(covariance):
    torch.manual_seed(4)
    model = StackedCorEx(10, [GaussianLayer(3, (8,)), CategoricalLayer(4, (6,), covariance=covariance)]).double()
    x = (torch.rand(5, 10, dtype=torch.float64) > 0.5).double()
    terms = model.bound(x)
    outputs = model.encode(x, sample=False)
    below, top = outputs[0], outputs[1].probabilities
    class_mean, class_log_variance = model.class_conditionals()
    samples = 200_000
    generator = torch.Generator().manual_seed(5)
    estimates = []
    for row in range(x.shape[0]):
        z1 = below.mean[row] + torch.exp(0.5 * below.log_variance[row]) * torch.randn(samples, 3, generator=generator, dtype=torch.float64)
        classes = torch.multinomial(top[row], samples, replacement=True, generator=generator)
        if covariance == "full":
            density = torch.distributions.MultivariateNormal(class_mean[classes], scale_tril=model.class_scale_tril()[classes])
        else:
            density = torch.distributions.Independent(torch.distributions.Normal(class_mean[classes], torch.exp(0.5 * class_log_variance[classes])), 1)
        estimates.append(density.log_prob(z1).mean())
    monte_carlo = torch.stack(estimates).mean()
    assert abs(float(terms.log_likelihood[1]) - float(monte_carlo)) < 0.02


def test_three_layers_train_step():
    torch.manual_seed(6)
    model = StackedCorEx(20, [GaussianLayer(8, (16,)), GaussianLayer(4, (8,)), CategoricalLayer(3, (8,))])
    x = (torch.rand(16, 20) > 0.5).float()
    terms = model.bound(x)
    terms.loss().backward()
    assert torch.isfinite(terms.loss())
    assert len(terms.log_likelihood) == 3
    assert model.encoders[2][0].weight.grad is not None


def test_gaussian_top_prior_term():
    model = StackedCorEx(20, [GaussianLayer(8, (16,)), GaussianLayer(4, (8,))]).double()
    x = (torch.rand(16, 20, dtype=torch.float64) > 0.5).double()
    terms = model.bound(x)
    top = model.encode(x)[1]
    entropy = 0.5 * (math.log(2 * math.pi) + 1 + top.log_variance).sum(1).mean()
    kl = _kl_diagonal(top.mean, top.log_variance, torch.zeros_like(top.mean), torch.zeros_like(top.mean)).mean()
    assert torch.allclose(terms.log_prior + terms.entropy[1], -kl, atol=1e-10)
    assert torch.allclose(terms.entropy[1], entropy, atol=1e-10)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([], "empty"),
        ([CategoricalLayer(3), GaussianLayer(4)], "only the top layer"),
        ([GaussianLayer(4), CategoricalLayer(1)], "at least 2"),
        ([GaussianLayer(4), CategoricalLayer(3, covariance="tied")], "covariance"),
        ([GaussianLayer(0)], "at least 1"),
        (["dense"], "GaussianLayer or CategoricalLayer"),
    ],
)
def test_invalid_stacks_rejected(layers, message):
    with pytest.raises(ConfigurationError, match=message):
        StackedCorEx(10, layers)


def test_accuracy_ignores_cluster_names():
    labels = np.array([0, 0, 1, 1, 2, 2])
    score = mnist_stacked.unsupervised_accuracy(np.array([2, 2, 0, 0, 1, 1]), labels)
    assert score.accuracy == 1.0
    assert score.mapping == {2: 0, 0: 1, 1: 2}


def test_accuracy_counts_merged_clusters():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    score = mnist_stacked.unsupervised_accuracy(np.array([0, 0, 0, 0, 1, 1, 1, 1]), labels, num_clusters=3)
    assert score.accuracy == pytest.approx(6 / 8)
    assert score.clusters_used == 2
    assert score.confusion.shape == (3, 3)


def test_accuracy_rejects_bad_shapes():
    with pytest.raises(ConfigurationError, match="equal length"):
        mnist_stacked.unsupervised_accuracy(np.array([0, 1]), np.array([0]))


def _prototype_data(n_per_class: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(4, 784, generator=generator) > 0.5).float()
    labels = torch.arange(4).repeat_interleave(n_per_class)
    flips = (torch.rand(labels.numel(), 784, generator=generator) < 0.1).float()
    images = (prototypes[labels] + flips) % 2
    order = torch.randperm(labels.numel(), generator=generator)
    return images[order], labels[order].numpy()


def test_pipeline_recovers_prototype_clusters(tmp_path):
    images, labels = _prototype_data(150, seed=0)
    config = mnist_stacked.StackedConfig(
        latents=8, encoder_hidden=(64,), classes=4, top_hidden=(16,), mixture_restarts=2,
        layer1=TrainConfig(epochs=4, batch_size=64, learning_rate=1e-3),
        joint=TrainConfig(epochs=2, batch_size=64, learning_rate=1e-3),
    )
    run = mnist_stacked.train(config, images, marginal_entropy_sum=0.0, checkpoint_dir=tmp_path, seed=0, progress=False)
    clusters = mnist_stacked.class_probabilities(run.model, images).argmax(1).numpy()
    score = mnist_stacked.unsupervised_accuracy(clusters, labels, num_clusters=4)
    assert score.accuracy > 0.95
    resumed = mnist_stacked.train(config, images, marginal_entropy_sum=0.0, checkpoint_dir=tmp_path, seed=0, progress=False)
    assert resumed.joint_history.loaded_from_checkpoint
    assert resumed.mixture is None
