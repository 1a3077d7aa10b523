"""Fréchet distance against closed forms, precision/recall against a brute-force reference, and the feature classifier."""

import hashlib

import numpy as np
import pytest
import torch
from scipy import linalg

from corex_edu import sample_quality
from corex_edu.errors import CheckpointMismatchError, ConfigurationError


def random_covariance(dimension, seed):
    factor = np.random.default_rng(seed).normal(size=(dimension, dimension))
    return factor @ factor.T / dimension + 0.1 * np.eye(dimension)


def test_frechet_identical_is_zero():
    covariance = random_covariance(5, seed=0)
    mean = np.arange(5.0)
    assert sample_quality.frechet_distance_gaussian(mean, covariance, mean, covariance) == pytest.approx(0.0, abs=1e-9)


def test_frechet_shifted_means():
    covariance = random_covariance(4, seed=1)
    shift = np.array([1.0, -2.0, 0.5, 3.0])
    distance = sample_quality.frechet_distance_gaussian(np.zeros(4), covariance, shift, covariance)
    assert distance == pytest.approx(float(shift @ shift), rel=1e-9)


@pytest.mark.parametrize("sigma1, sigma2", [(1.0, 2.0), (0.3, 0.1), (5.0, 5.0)])
def test_frechet_scaled_isotropic(sigma1, sigma2):
    dimension = 6
    distance = sample_quality.frechet_distance_gaussian(np.zeros(dimension), sigma1**2 * np.eye(dimension), np.zeros(dimension), sigma2**2 * np.eye(dimension))
    assert distance == pytest.approx(dimension * (sigma1 - sigma2) ** 2, abs=1e-9)


def test_frechet_matches_scipy_sqrtm():
    cov1, cov2 = random_covariance(8, seed=2), random_covariance(8, seed=3)
    mean1, mean2 = np.zeros(8), np.full(8, 0.5)
    cross = linalg.sqrtm(cov1 @ cov2).real
    expected = float((mean1 - mean2) @ (mean1 - mean2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(cross))
    assert sample_quality.frechet_distance_gaussian(mean1, cov1, mean2, cov2) == pytest.approx(expected, rel=1e-8)


def test_frechet_singular_covariance():
    singular = np.diag([1.0, 0.0, 4.0])
    distance = sample_quality.frechet_distance_gaussian(np.zeros(3), singular, np.zeros(3), np.eye(3))
    assert distance == pytest.approx(0.0 + 1.0 + 1.0, abs=1e-9)


def test_frechet_samples_converge():
    cov1, cov2 = random_covariance(4, seed=4), random_covariance(4, seed=5)
    mean1, mean2 = np.zeros(4), np.array([0.5, 0.0, -0.5, 1.0])
    expected = sample_quality.frechet_distance_gaussian(mean1, cov1, mean2, cov2)
    errors = []
    for n in (1_000, 100_000):
        rng = np.random.default_rng(n)
        a, b = rng.multivariate_normal(mean1, cov1, size=n), rng.multivariate_normal(mean2, cov2, size=n)
        errors.append(abs(sample_quality.frechet_distance(a, b) - expected))
    assert errors[1] < 0.01 * expected
    assert errors[1] < errors[0]


def brute_force_precision_recall(real, fake, k):
    def radii(points):
        distances = np.sqrt(((points[:, None] - points[None]) ** 2).sum(axis=2))
        return np.sort(distances, axis=1)[:, k]

    cross = np.sqrt(((fake[:, None] - real[None]) ** 2).sum(axis=2))
    precision = np.mean((cross <= radii(real)[None, :]).any(axis=1))
    recall = np.mean((cross <= radii(fake)[:, None]).any(axis=0))
    return precision, recall


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_precision_recall_matches_reference(chunk):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 5)), rng.normal(loc=0.7, size=(250, 5))
    expected_precision, expected_recall = brute_force_precision_recall(real, fake, k=3)
    result = sample_quality.precision_recall(real, fake, k=3, chunk=chunk)
    assert result.k == 3
    assert result.precision == pytest.approx(expected_precision, abs=1e-9)
    assert result.recall == pytest.approx(expected_recall, abs=1e-9)


def test_precision_recall_same_distribution():
    rng = np.random.default_rng(1)
    result = sample_quality.precision_recall(rng.normal(size=(2_000, 4)), rng.normal(size=(2_000, 4)), k=3)
    assert result.precision > 0.8
    assert result.recall > 0.8


def test_precision_recall_disjoint_is_zero():
    rng = np.random.default_rng(2)
    result = sample_quality.precision_recall(rng.normal(size=(500, 4)), rng.normal(loc=50.0, size=(500, 4)), k=3)
    assert result.precision == 0.0
    assert result.recall == 0.0


def test_precision_recall_half_the_modes():
    rng = np.random.default_rng(3)
    modes = 20.0 * np.eye(4)
    real = np.concatenate([mode + rng.normal(size=(500, 4)) for mode in modes])
    fake = np.concatenate([mode + rng.normal(size=(1_000, 4)) for mode in modes[:2]])
    result = sample_quality.precision_recall(real, fake, k=3)
    assert result.precision > 0.8
    assert 0.4 < result.recall <= 0.5


def test_precision_recall_k_too_large():
    with pytest.raises(ConfigurationError, match="k=10 must be smaller than the size of each feature set"):
        sample_quality.precision_recall(np.zeros((10, 2)), np.ones((20, 2)), k=10)


def test_feature_widths_must_match():
    with pytest.raises(ConfigurationError, match="feature widths differ: 3 and 4"):
        sample_quality.frechet_distance(np.zeros((10, 3)), np.zeros((10, 4)))


def test_nan_features_rejected():
    features = np.ones((10, 3))
    features[2, 1] = np.inf
    with pytest.raises(ConfigurationError, match="fake_features contains NaN or infinite values"):
        sample_quality.precision_recall(np.zeros((10, 3)), features)


def test_asymmetric_covariance_rejected():
    with pytest.raises(ConfigurationError, match="cov2 is not symmetric"):
        sample_quality.frechet_distance_gaussian(np.zeros(2), np.eye(2), np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))


def stripe_images(count, seed):
    """Return 1x16x16 images in four classes (horizontal, vertical, checkerboard, none) with uniform noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(4, (count,), generator=generator)
    rows, columns = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    patterns = torch.stack([(rows // 2 % 2).float(), (columns // 2 % 2).float(), ((rows // 2 + columns // 2) % 2).float(), torch.zeros(16, 16)])
    images = 0.6 * patterns[labels] + 0.4 * torch.rand(count, 16, 16, generator=generator)
    return images.unsqueeze(1), labels


def attribute_images(count, seed):
    """Return 1x16x16 images with three independent 0/1 attributes: horizontal stripes, vertical stripes, bright background."""
    generator = torch.Generator().manual_seed(seed)
    attributes = torch.randint(2, (count, 3), generator=generator).float()
    rows, columns = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    horizontal, vertical = (rows // 2 % 2).float(), (columns // 2 % 2).float()
    images = 0.3 * attributes[:, 0, None, None] * horizontal + 0.3 * attributes[:, 1, None, None] * vertical + 0.3 * attributes[:, 2, None, None]
    images = images + 0.1 * torch.rand(count, 16, 16, generator=generator)
    return images.unsqueeze(1), attributes


def test_classifier_multiclass_beats_chance():
    images, labels = stripe_images(600, seed=0)
    validation = stripe_images(300, seed=1)
    fit = sample_quality.train_feature_classifier(images, labels, epochs=2, batch_size=32, seed=0, validation=validation, width=8, feature_dim=16)
    assert fit.validation_accuracy > 0.6
    assert len(fit.epoch_seconds) == 2


def test_classifier_multilabel_beats_chance():
    images, attributes = attribute_images(600, seed=2)
    validation = attribute_images(300, seed=3)
    fit = sample_quality.train_feature_classifier(images, attributes, task="multilabel", epochs=2, batch_size=32, seed=0, validation=validation, width=8, feature_dim=16)
    assert fit.validation_accuracy > 0.7


def test_classifier_on_mnist_beats_chance(mnist_root):
    from corex_edu.data import mnist

    images, labels = mnist.load("train", root=mnist_root)
    test_images, test_labels = mnist.load("test", root=mnist_root)
    fit = sample_quality.train_feature_classifier(
        images[:2_000].view(-1, 1, 28, 28), labels[:2_000], epochs=2, batch_size=32, seed=0,
        validation=(test_images[:1_000].view(-1, 1, 28, 28), test_labels[:1_000]), num_classes=10,
    )
    assert fit.validation_accuracy > 0.5


def parameters_of(model):
    return torch.cat([parameter.detach().flatten() for parameter in model.parameters()])


def test_classifier_is_deterministic():
    images, labels = stripe_images(128, seed=4)
    first = sample_quality.train_feature_classifier(images, labels, epochs=1, batch_size=32, seed=5, width=8, feature_dim=16)
    second = sample_quality.train_feature_classifier(images, labels, epochs=1, batch_size=32, seed=5, width=8, feature_dim=16)
    assert torch.equal(parameters_of(first.model), parameters_of(second.model))


def test_classifier_checkpoint_reloads(tmp_path):
    images, labels = stripe_images(128, seed=6)
    path = tmp_path / "classifier.pt"
    trained = sample_quality.train_feature_classifier(images, labels, epochs=1, batch_size=32, checkpoint_path=path, width=8, feature_dim=16)
    loaded = sample_quality.train_feature_classifier(images, labels, epochs=1, batch_size=32, checkpoint_path=path, width=8, feature_dim=16)
    assert path.is_file()
    assert not trained.loaded_from_checkpoint
    assert loaded.loaded_from_checkpoint
    assert torch.equal(parameters_of(trained.model), parameters_of(loaded.model))
    assert loaded.epoch_losses == trained.epoch_losses


def test_classifier_checkpoint_other_data(tmp_path):
    images, labels = stripe_images(128, seed=7)
    path = tmp_path / "classifier.pt"
    sample_quality.train_feature_classifier(images, labels, epochs=1, batch_size=32, checkpoint_path=path, width=8, feature_dim=16)
    with pytest.raises(CheckpointMismatchError, match="data_sha256"):
        sample_quality.train_feature_classifier(images.flip(0), labels.flip(0), epochs=1, batch_size=32, checkpoint_path=path, width=8, feature_dim=16)


def test_extract_features_shape_and_dtype():
    images, labels = stripe_images(64, seed=8)
    model = sample_quality.train_feature_classifier(images, labels, epochs=1, batch_size=32, width=8, feature_dim=16).model
    features = sample_quality.extract_features(model, images, batch_size=10)
    assert features.shape == (64, 16)
    assert features.dtype == np.float64
    # Another batch size may pick another convolution kernel when torch uses several threads, so
    # the features agree to float32 rounding, not bit for bit.
    np.testing.assert_allclose(features, sample_quality.extract_features(model, images, batch_size=64), rtol=1e-5, atol=1e-6)


def test_classifier_handles_celeba_shape():
    generator = torch.Generator().manual_seed(9)
    images = torch.rand(8, 3, 64, 64, generator=generator)
    attributes = torch.randint(2, (8, 40), generator=generator).bool()  # the CelebA loader returns booleans
    fit = sample_quality.train_feature_classifier(images, attributes, task="multilabel", epochs=1, batch_size=4, width=8, feature_dim=16)
    assert fit.model(images).shape == (8, 40)
    assert sample_quality.extract_features(fit.model, images).shape == (8, 16)


def test_flat_mnist_rows_rejected():
    with pytest.raises(ConfigurationError, match=r"got \(5, 784\); reshape flat MNIST rows with images.view\(-1, 1, 28, 28\)"):
        sample_quality.train_feature_classifier(torch.zeros(5, 784), torch.zeros(5, dtype=torch.long))


def test_pixel_range_rejected():
    with pytest.raises(ConfigurationError, match=r"values in \[0, 1\], got the range \[0, 255\]; divide 8-bit pixels by 255"):
        sample_quality.train_feature_classifier(torch.full((4, 1, 8, 8), 255.0).index_fill(0, torch.tensor([0]), 0.0), torch.zeros(4, dtype=torch.long))


def test_signed_attributes_rejected():
    attributes = torch.ones(4, 40)
    attributes[0, 0] = -1
    with pytest.raises(ConfigurationError, match=r"map CelebA's -1/\+1 attributes with \(targets \+ 1\) / 2"):
        sample_quality.train_feature_classifier(torch.zeros(4, 3, 8, 8), attributes, task="multilabel")


def test_unknown_task_rejected():
    with pytest.raises(ConfigurationError, match="task must be 'multiclass' or 'multilabel', got 'binary'"):
        sample_quality.train_feature_classifier(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), task="binary")


def test_inception_weights_absent(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert sample_quality.inception_weights_available() is None


def test_inception_weights_found(monkeypatch, tmp_path):
    from torchvision.models import Inception_V3_Weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    weight_file = tmp_path / "checkpoints" / Inception_V3_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    weight_file.parent.mkdir()
    weight_file.write_bytes(b"placeholder")
    assert sample_quality.inception_weights_available() == weight_file


def flatten(images):
    return images.flatten(start_dim=1).double().numpy()


def gaussian_images(count, seed, brightness=0.5):
    generator = torch.Generator().manual_seed(seed)
    return (brightness + 0.1 * torch.randn(count, 1, 8, 8, generator=generator)).clamp(0.0, 1.0)


def test_evaluate_samples_ranks_samplers():
    real = gaussian_images(400, seed=0)
    sample_sets = {
        "matching": [gaussian_images(400, seed=1), gaussian_images(400, seed=2)],
        "too bright": gaussian_images(400, seed=3, brightness=0.8),
    }
    results = sample_quality.evaluate_samples(flatten, real, sample_sets, k=3)
    assert list(results) == ["matching", "too bright"]
    assert results["matching"].draws == 2
    assert results["matching"].frechet_distance_sd is not None
    assert results["too bright"].frechet_distance_sd is None
    assert results["matching"].frechet_distance < results["too bright"].frechet_distance
    assert results["matching"].recall > results["too bright"].recall


def test_evaluate_samples_matches_metrics():
    real, fake = gaussian_images(300, seed=4), gaussian_images(200, seed=5, brightness=0.55)
    result = sample_quality.evaluate_samples(flatten, real, {"fake": fake}, k=4)["fake"]
    direct = sample_quality.precision_recall(flatten(real), flatten(fake), k=4)
    assert result.frechet_distance == pytest.approx(sample_quality.frechet_distance(flatten(real), flatten(fake)), rel=1e-12)
    assert result.precision == direct.precision
    assert result.recall == direct.recall
    assert result.k == 4


def test_evaluate_samples_with_classifier():
    images, labels = stripe_images(128, seed=10)
    model = sample_quality.train_feature_classifier(images, labels, epochs=1, batch_size=32, width=8, feature_dim=16).model
    result = sample_quality.evaluate_samples(model, images[:64], {"half": images[64:]}, k=3)["half"]
    assert result.frechet_distance >= 0.0
    assert 0.0 <= result.precision <= 1.0


@pytest.fixture(scope="module")
def untrained_inception():
    """An Inception v3 with default (untrained) weights: it checks the wiring, its features mean nothing."""
    torch.manual_seed(0)
    return sample_quality._inception_network()


def test_inception_features_shape_and_grey_input(untrained_inception):
    extractor = sample_quality.InceptionFeatures(network=untrained_inception, batch_size=2)
    grey = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    features = extractor(grey)
    assert features.shape == (3, sample_quality.INCEPTION_FEATURES)
    assert features.dtype == np.float64
    assert np.all(np.isfinite(features))
    # A grey image is the RGB image with three equal channels, and batching does not change a row.
    np.testing.assert_allclose(features, extractor(grey.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features[2:], extractor(grey[2:]), rtol=1e-4, atol=1e-5)
    prepared = extractor.preprocess(grey)
    assert prepared.shape == (3, 3, 299, 299)
    # ImageNet normalisation of a constant-0 image gives -mean/std in each channel.
    black = extractor.preprocess(torch.zeros(1, 3, 16, 16))
    expected = -torch.tensor(sample_quality.IMAGENET_MEAN) / torch.tensor(sample_quality.IMAGENET_STD)
    torch.testing.assert_close(black[0, :, 0, 0], expected)


def test_inception_features_in_evaluate_samples(untrained_inception):
    extractor = sample_quality.InceptionFeatures(network=untrained_inception, batch_size=8)
    generator = torch.Generator().manual_seed(2)
    real = torch.rand(8, 3, 32, 32, generator=generator)
    scores = sample_quality.evaluate_samples(extractor, real, {"same": real, "dark": 0.2 * torch.rand(8, 3, 32, 32, generator=generator)}, k=2)
    assert scores["same"].frechet_distance == pytest.approx(0.0, abs=1e-6)
    assert scores["dark"].frechet_distance > 0.0


def test_inception_weights_load_from_file(untrained_inception, tmp_path):
    plain = tmp_path / "inception.pth"
    torch.save(untrained_inception.state_dict(), plain)
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    named = tmp_path / f"inception_v3_google-{digest[:8]}.pth"
    plain.rename(named)
    loaded = sample_quality.InceptionFeatures(weights=named)
    assert loaded.weights == named
    images = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(3))
    direct = sample_quality.InceptionFeatures(network=untrained_inception)
    np.testing.assert_allclose(loaded(images), direct(images), rtol=1e-6, atol=1e-7)


def test_inception_weights_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigurationError, match="no Inception v3 weight file at .*inception_v3_google-0cc3c7bd.pth"):
        sample_quality.InceptionFeatures()
    corrupt = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    corrupt.write_bytes(b"truncated download")
    with pytest.raises(ConfigurationError, match="corrupt or incomplete"):
        sample_quality.InceptionFeatures(weights=corrupt)
    wrong = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, wrong)
    with pytest.raises(ConfigurationError, match="not a state dict of torchvision's Inception v3"):
        sample_quality.InceptionFeatures(weights=wrong)
    with pytest.raises(ConfigurationError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        sample_quality.InceptionFeatures(network=torch.nn.Identity())(torch.rand(2, 2, 16, 16))
