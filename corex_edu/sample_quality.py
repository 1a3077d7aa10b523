"""Offline sample-quality metrics in the feature space of a classifier that the package trains itself.

The usual Fréchet Inception Distance (FID) and precision/recall use features of an
ImageNet-trained Inception v3. Its weights cannot be downloaded on every machine this package
runs on, so here the features come from a small convolutional classifier trained on the same
data set (MNIST digits or CelebA attributes). The numbers are therefore NOT Inception FID
values: they compare samplers with each other on one data set and one trained classifier,
and they are not comparable with FID values published elsewhere.

* :func:`train_feature_classifier` and :func:`extract_features`: the classifier and its
  penultimate-layer features.
* :func:`frechet_distance` and :func:`frechet_distance_gaussian`: the squared 2-Wasserstein
  distance between Gaussians fitted to two feature sets.
* :func:`precision_recall`: improved precision and recall with k-nearest-neighbour balls
  (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative
  Models", NeurIPS 2019).
* :func:`evaluate_samples`: all three metrics for several samplers, as mean and standard
  deviation over repeated draws.
* :class:`InceptionFeatures`: for the usual Inception feature space, when torchvision's Inception
  v3 weights are in the local cache (:func:`inception_weights_available`); pass it to
  :func:`evaluate_samples` in place of the classifier.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from corex_edu import checkpoints
from corex_edu.errors import ConfigurationError, NonFiniteLossError
from corex_edu.training import progress_enabled

logger = logging.getLogger(__name__)

Task = Literal["multiclass", "multilabel"]
FeatureExtractor = Callable[[torch.Tensor], np.ndarray]

# Three 2x2 max-pools need at least 8 pixels per side.
MIN_IMAGE_SIDE = 8


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim != 4:
        raise ConfigurationError(
            f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}; "
            "reshape flat MNIST rows with images.view(-1, 1, 28, 28)"
        )
    if images.shape[0] < 1:
        raise ConfigurationError(f"{name} is empty (shape {tuple(images.shape)}); pass at least one image")
    if min(images.shape[2], images.shape[3]) < MIN_IMAGE_SIDE:
        raise ConfigurationError(f"{name} are {images.shape[2]}x{images.shape[3]} pixels; the classifier needs at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
    images = images.float()
    if not torch.isfinite(images).all():
        raise ConfigurationError(f"{name} contain NaN or infinite values; check the decoder output or the data loader")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ConfigurationError(
            f"{name} must have values in [0, 1], got the range [{low:.4g}, {high:.4g}]; "
            "divide 8-bit pixels by 255, apply torch.sigmoid to decoder logits or clamp decoder means with .clamp(0, 1)"
        )
    return images


def _check_targets(targets: torch.Tensor, task: Task, count: int, num_classes: int | None) -> tuple[torch.Tensor, int]:
    targets = torch.as_tensor(targets)
    if targets.shape[0] != count:
        raise ConfigurationError(f"targets have {targets.shape[0]} rows but there are {count} images; pass one target per image")
    if task == "multiclass":
        if targets.ndim != 1 or targets.dtype.is_floating_point:
            raise ConfigurationError(f"multiclass targets must be integer class labels of shape (N,), got dtype {targets.dtype} and shape {tuple(targets.shape)}")
        targets = targets.long()
        if int(targets.min()) < 0:
            raise ConfigurationError(f"class labels must be non-negative, got the minimum {int(targets.min())}; map them to 0 .. num_classes - 1")
        classes = int(targets.max()) + 1 if num_classes is None else _check_positive("num_classes", num_classes)
        if int(targets.max()) >= classes:
            raise ConfigurationError(f"class label {int(targets.max())} is out of range for num_classes={classes}; raise num_classes")
        return targets, classes
    if task == "multilabel":
        if targets.ndim != 2:
            raise ConfigurationError(f"multilabel targets must have shape (N, attributes), got {tuple(targets.shape)}")
        targets = targets.float()
        if not torch.all((targets == 0) | (targets == 1)):
            raise ConfigurationError(
                f"multilabel targets must be 0 or 1, got values in [{float(targets.min()):g}, {float(targets.max()):g}]; "
                "map CelebA's -1/+1 attributes with (targets + 1) / 2"
            )
        return targets, targets.shape[1]
    raise ConfigurationError(f"task must be 'multiclass' or 'multilabel', got {task!r}")


class FeatureClassifier(nn.Module):
    """Convolutional classifier whose penultimate layer supplies the sample-quality features.

    Three blocks of 3x3 convolution, ReLU and 2x2 max-pool (``width``, 2 ``width`` and
    4 ``width`` channels), global average pooling, a ``feature_dim``-wide ReLU layer (the
    features) and a linear head with one logit per class or attribute.
    """

    def __init__(self, in_channels: int, num_outputs: int, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_outputs", num_outputs), ("width", width), ("feature_dim", feature_dim)):
            _check_positive(name, value)
        blocks: list[nn.Module] = []
        channels = in_channels
        for multiple in (1, 2, 4):
            blocks += [nn.Conv2d(channels, multiple * width, kernel_size=3, padding=1, bias=False), nn.GroupNorm(math.gcd(8, multiple * width), multiple * width), nn.ReLU(), nn.MaxPool2d(2)]
            channels = multiple * width
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_outputs)
        self.feature_dim = feature_dim

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) in [0, 1] to penultimate-layer features (N, feature_dim)."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


@dataclass
class FeatureClassifierFit:
    """A trained feature classifier with its held-out accuracy and training record."""

    model: FeatureClassifier
    task: Task
    validation_accuracy: float | None  # share of correct labels (multilabel: averaged over attributes); None without validation data
    epoch_losses: list[float] = field(default_factory=list)  # mean training loss per epoch, in nats per image (multilabel: per attribute)
    epoch_seconds: list[float] = field(default_factory=list)  # wall time of each epoch
    loaded_from_checkpoint: bool = False


def _data_digest(images: torch.Tensor, targets: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in (images, targets):
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).data)
    return digest.hexdigest()


def _loss(task: Task, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if task == "multiclass":
        return F.cross_entropy(logits, targets)
    return F.binary_cross_entropy_with_logits(logits, targets)


@torch.no_grad()
def classifier_accuracy(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, task: Task, batch_size: int = 500) -> float:
    """Return the share of correct predictions: argmax for ``multiclass``, logit > 0 per attribute for ``multilabel``."""
    images = _check_images(images)
    targets, _ = _check_targets(targets, task, images.shape[0], None if task == "multilabel" else _output_count(model))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0.0
    for start in range(0, images.shape[0], _check_positive("batch_size", batch_size)):
        logits = model(images[start : start + batch_size].to(device)).cpu()
        batch_targets = targets[start : start + batch_size]
        if task == "multiclass":
            correct += float((logits.argmax(dim=1) == batch_targets).sum())
        else:
            correct += float(((logits > 0).float() == batch_targets).float().mean(dim=1).sum())
    model.train(was_training)
    return correct / images.shape[0]


def _output_count(model: nn.Module) -> int | None:
    head = getattr(model, "head", None)
    return head.out_features if isinstance(head, nn.Linear) else None


def train_feature_classifier(
    images: torch.Tensor,
    targets: torch.Tensor,
    task: Task = "multiclass",
    epochs: int = 2,
    batch_size: int = 128,
    seed: int = 0,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike[str] | None = None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    num_classes: int | None = None,
    learning_rate: float = 1e-3,
    width: int = 32,
    feature_dim: int = 128,
    progress: bool | None = None,
) -> FeatureClassifierFit:
    """Train a :class:`FeatureClassifier` with Adam and return it with its held-out accuracy.

    Args:
        images: (N, C, H, W) in [0, 1], for example MNIST as (N, 1, 28, 28) or CelebA as (N, 3, 64, 64).
        targets: ``multiclass``: int64 labels (N,), trained with cross-entropy. ``multilabel``:
            0/1 attributes (N, A), trained with binary cross-entropy per attribute.
        seed: seeds the weight initialisation and the batch order, so two runs on the CPU
            with the same arguments give identical weights.
        checkpoint_path: where the finished model is saved atomically. A checkpoint there
            that was trained on the same data with the same settings is loaded instead of
            training. One from other settings or data raises ``CheckpointMismatchError``.
        validation: held-out (images, targets) for ``validation_accuracy``.
        num_classes: number of classes for ``multiclass``; defaults to the largest label + 1.

    Raises:
        ConfigurationError: invalid images, targets or settings; the message names the fix.
        NonFiniteLossError: a step produced a NaN or infinite loss.
        CheckpointMismatchError: the checkpoint was saved under other settings or data.
    """
    images = _check_images(images)
    targets, num_outputs = _check_targets(targets, task, images.shape[0], num_classes)
    epochs = _check_positive("epochs", epochs)
    batch_size = _check_positive("batch_size", batch_size)
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ConfigurationError(f"learning_rate must be a positive number, got {learning_rate!r}")
    device = torch.device(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FeatureClassifier(images.shape[1], num_outputs, width=width, feature_dim=feature_dim)
    model.to(device)

    settings = {
        "task": task,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "image_shape": list(images.shape[1:]),
        "num_images": images.shape[0],
        "data_sha256": _data_digest(images, targets) if checkpoint_path is not None else None,
    }
    expected = checkpoints.fingerprint(settings, model) if checkpoint_path is not None else {}
    state = checkpoints.load(checkpoint_path, expected, map_location=device) if checkpoint_path is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        result = FeatureClassifierFit(model, task, None, list(state["epoch_losses"]), list(state["epoch_seconds"]), loaded_from_checkpoint=True)
    else:
        result = FeatureClassifierFit(model, task, None)
        _train(model, images, targets, task, epochs, batch_size, seed, learning_rate, device, result, progress)
        if checkpoint_path is not None:
            checkpoints.save(checkpoint_path, {"model": model.state_dict(), "epoch_losses": result.epoch_losses, "epoch_seconds": result.epoch_seconds}, expected)

    model.eval()
    if validation is not None:
        validation_images, validation_targets = validation
        result.validation_accuracy = classifier_accuracy(model, validation_images, validation_targets, task)
    return result


def _train(
    model: FeatureClassifier,
    images: torch.Tensor,
    targets: torch.Tensor,
    task: Task,
    epochs: int,
    batch_size: int,
    seed: int,
    learning_rate: float,
    device: torch.device,
    result: FeatureClassifierFit,
    progress: bool | None,
) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    count = images.shape[0]
    model.train()
    for epoch in tqdm(range(epochs), desc="feature classifier", disable=not progress_enabled(progress)):
        started = time.perf_counter()
        order = torch.randperm(count, generator=generator)
        total = 0.0
        for step, start in enumerate(range(0, count, batch_size)):
            index = order[start : start + batch_size]
            loss = _loss(task, model(images[index].to(device)), targets[index].to(device))
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"feature classifier: the loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                    f"lower learning_rate (now {learning_rate}) or check the images for corrupt values"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * index.numel()
        result.epoch_losses.append(total / count)
        result.epoch_seconds.append(time.perf_counter() - started)
        logger.info("feature classifier epoch %d/%d: loss %.4f, %.1f s", epoch + 1, epochs, result.epoch_losses[-1], result.epoch_seconds[-1])


@torch.no_grad()
def extract_features(model: FeatureClassifier, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Return the penultimate-layer features of ``images`` (N, C, H, W) in [0, 1] as float64, shape (N, feature_dim)."""
    images = _check_images(images)
    batch_size = _check_positive("batch_size", batch_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = [model.features(images[start : start + batch_size].to(device)).double().cpu() for start in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(parts).numpy()


def _check_features(name: str, features: np.ndarray | torch.Tensor, minimum_rows: int) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ConfigurationError(f"{name} must have shape (N, F), got {array.shape}; flatten each sample's features into one row")
    if array.shape[0] < minimum_rows:
        raise ConfigurationError(f"{name} has {array.shape[0]} rows, need at least {minimum_rows}; pass more samples")
    if not np.all(np.isfinite(array)):
        raise ConfigurationError(f"{name} contains NaN or infinite values; check the images that produced them")
    return array


def _check_same_width(first: np.ndarray, second: np.ndarray) -> None:
    if first.shape[1] != second.shape[1]:
        raise ConfigurationError(
            f"feature widths differ: {first.shape[1]} and {second.shape[1]}; extract both sets with the same feature extractor"
        )


def _symmetric_square_root(matrix: np.ndarray) -> np.ndarray:
    # Eigenvalues below zero come only from rounding in a positive semi-definite matrix, so they are clipped to 0.
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _check_covariance(name: str, covariance: np.ndarray, dimension: int) -> np.ndarray:
    covariance = np.asarray(covariance, dtype=np.float64)
    if covariance.shape != (dimension, dimension):
        raise ConfigurationError(f"{name} must have shape ({dimension}, {dimension}) to match its mean, got {covariance.shape}")
    if not np.all(np.isfinite(covariance)):
        raise ConfigurationError(f"{name} contains NaN or infinite values")
    scale = max(float(np.abs(covariance).max()), np.finfo(np.float64).tiny)
    if not np.allclose(covariance, covariance.T, rtol=0.0, atol=1e-8 * scale):
        raise ConfigurationError(f"{name} is not symmetric; pass a covariance matrix, for example np.cov(features, rowvar=False)")
    smallest = float(np.linalg.eigvalsh(0.5 * (covariance + covariance.T))[0])
    if smallest < -1e-8 * scale * dimension:
        raise ConfigurationError(f"{name} has the negative eigenvalue {smallest:.3g}, so it is not a covariance matrix; pass a positive semi-definite matrix")
    return covariance


def frechet_distance_gaussian(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """Return the Fréchet (squared 2-Wasserstein) distance between N(mean1, cov1) and N(mean2, cov2).

    d^2 = |mean1 - mean2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^(1/2) cov2 cov1^(1/2))^(1/2)).
    The trace of the inner square root is the sum of the square roots of the eigenvalues of the
    symmetric positive semi-definite matrix cov1^(1/2) cov2 cov1^(1/2), taken from
    :func:`numpy.linalg.eigh` with rounding-negative eigenvalues clipped to 0. The result is
    clipped at 0 for the same reason. Units: squared feature units.
    """
    mean1 = np.asarray(mean1, dtype=np.float64).reshape(-1)
    mean2 = np.asarray(mean2, dtype=np.float64).reshape(-1)
    if mean1.shape != mean2.shape:
        raise ConfigurationError(f"the means have different lengths {mean1.shape[0]} and {mean2.shape[0]}; both Gaussians need the same dimension")
    if not (np.all(np.isfinite(mean1)) and np.all(np.isfinite(mean2))):
        raise ConfigurationError("a mean contains NaN or infinite values")
    dimension = mean1.shape[0]
    cov1 = _check_covariance("cov1", cov1, dimension)
    cov2 = _check_covariance("cov2", cov2, dimension)

    root1 = _symmetric_square_root(cov1)
    product = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh(0.5 * (product + product.T))
    trace_of_root = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    difference = mean1 - mean2
    value = float(difference @ difference) + float(np.trace(cov1)) + float(np.trace(cov2)) - 2.0 * trace_of_root
    return max(value, 0.0)


def frechet_distance(features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor) -> float:
    """Return the Fréchet distance between Gaussians fitted to two feature sets (N, F), in squared feature units.

    Each set's mean and covariance (``np.cov``, divided by N - 1) go into
    :func:`frechet_distance_gaussian`.

    NOTE: the estimate is biased upwards at finite N. For two independent sets of 10,000
    standard normal features of width 128 it averaged 0.85 (sd 0.007 over 5 seeds) rather
    than 0, so compare samplers only at equal N.
    """
    a = _check_features("features_a", features_a, minimum_rows=2)
    b = _check_features("features_b", features_b, minimum_rows=2)
    _check_same_width(a, b)
    return frechet_distance_gaussian(a.mean(axis=0), np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1]), b.mean(axis=0), np.cov(b, rowvar=False).reshape(b.shape[1], b.shape[1]))


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall of a fake feature set against a real one, each a share in [0, 1]."""

    precision: float  # share of fake features inside the real manifold
    recall: float  # share of real features inside the fake manifold
    k: int  # neighbour whose distance sets every ball's radius


def _check_k(k: int, real_count: int, fake_count: int) -> int:
    k = _check_positive("k", k)
    smallest = min(real_count, fake_count)
    if k >= smallest:
        raise ConfigurationError(f"k={k} must be smaller than the size of each feature set (smallest: {smallest}); lower k or pass more samples")
    return k


def _kth_neighbour_radii(features: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Return each row's Euclidean distance to its k-th nearest other row."""
    radii = []
    for start in range(0, features.shape[0], chunk):
        distances = torch.cdist(features[start : start + chunk], features)
        # The smallest distance is the row to itself (0), so the k-th neighbour is at position k.
        radii.append(distances.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def _manifold_coverage(real: torch.Tensor, real_radii: torch.Tensor, fake: torch.Tensor, fake_radii: torch.Tensor, chunk: int) -> tuple[float, float]:
    """Return (share of fake rows in some real ball, share of real rows in some fake ball) from one pass over the distances."""
    fake_inside = torch.zeros(fake.shape[0], dtype=torch.bool, device=fake.device)
    real_inside = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    for start in range(0, fake.shape[0], chunk):
        distances = torch.cdist(fake[start : start + chunk], real)
        fake_inside[start : start + chunk] = (distances <= real_radii[None, :]).any(dim=1)
        real_inside |= (distances <= fake_radii[start : start + chunk, None]).any(dim=0)
    return int(fake_inside.sum()) / fake.shape[0], int(real_inside.sum()) / real.shape[0]


def _as_tensor(features: np.ndarray, device: torch.device | str) -> torch.Tensor:
    return torch.from_numpy(features).to(device=device, dtype=torch.float32)


def precision_recall(
    real_features: np.ndarray | torch.Tensor,
    fake_features: np.ndarray | torch.Tensor,
    k: int = 3,
    chunk: int = 1024,
    device: torch.device | str = "cpu",
) -> PrecisionRecall:
    """Compute improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) of fake features against real ones.

    The real manifold is the union of balls around every real feature, each with the radius
    of its distance to its k-th nearest real neighbour. Precision is the share of fake
    features inside the real manifold. Recall is the share of real features inside the fake
    manifold, built the same way from the fake features.

    Distances are Euclidean, computed in float32 with :func:`torch.cdist` on blocks of
    ``chunk`` rows against a whole set. Peak memory is about 4 x chunk x max(N_real, N_fake)
    bytes per block (40 MiB for chunk 1024 and 10,000 features) plus the features themselves.
    """
    real = _check_features("real_features", real_features, minimum_rows=2)
    fake = _check_features("fake_features", fake_features, minimum_rows=2)
    _check_same_width(real, fake)
    k = _check_k(k, real.shape[0], fake.shape[0])
    chunk = _check_positive("chunk", chunk)
    with torch.no_grad():
        real_tensor, fake_tensor = _as_tensor(real, device), _as_tensor(fake, device)
        real_radii = _kth_neighbour_radii(real_tensor, k, chunk)
        fake_radii = _kth_neighbour_radii(fake_tensor, k, chunk)
        precision, recall = _manifold_coverage(real_tensor, real_radii, fake_tensor, fake_radii, chunk)
    return PrecisionRecall(precision=precision, recall=recall, k=k)


def inception_weights_available() -> Path | None:
    """Return the path of torchvision's Inception v3 weight file in torch's local hub cache, or None.

    Only ``torch.hub.get_dir()/checkpoints`` is searched, for the file name of
    ``torchvision.models.Inception_V3_Weights.IMAGENET1K_V1``. Nothing is downloaded.
    """
    from torchvision.models import Inception_V3_Weights

    file_name = Inception_V3_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    candidate = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    return candidate if candidate.is_file() else None


INCEPTION_IMAGE_SIDE = 299
INCEPTION_FEATURES = 2048
# torchvision's ImageNet normalisation. With transform_input=True the network maps it back to
# (x - 0.5) / 0.5 per channel, the scaling that the Google weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _inception_network() -> nn.Module:
    """Return torchvision's Inception v3 with its classifier replaced by the identity (2048 pooled features out)."""
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    network.fc = nn.Identity()
    return network


def _check_weight_file(path: Path) -> None:
    """Raise ConfigurationError if ``path`` is missing, or if its SHA-256 does not start with the hash in its name."""
    if not path.is_file():
        raise ConfigurationError(
            f"no Inception v3 weight file at {path}; on a machine with internet, download torchvision's "
            "Inception_V3_Weights.IMAGENET1K_V1 (inception_v3_google-0cc3c7bd.pth) into "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'}, or pass its path as weights"
        )
    # torch.hub names weight files <name>-<first hex digits of their SHA-256>.pth.
    stem = path.name.split(".", 1)[0]
    expected = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    if len(expected) >= 8 and all(character in "0123456789abcdef" for character in expected):
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        if not digest.hexdigest().startswith(expected):
            raise ConfigurationError(
                f"{path} is corrupt or incomplete: its SHA-256 starts with {digest.hexdigest()[:len(expected)]}, "
                f"its name says {expected}; delete it and download it again"
            )


class InceptionFeatures:
    """The 2048 pooled features of torchvision's ImageNet-trained Inception v3, for Fréchet Inception Distance.

    An instance is a feature extractor for :func:`evaluate_samples`: it maps images
    (N, C, H, W) in [0, 1], grey (C = 1, repeated to 3 channels) or RGB, to a float64 array
    (N, 2048). Each image is resized to 299 x 299 (bilinear) and normalised with ImageNet's
    mean and standard deviation, as torchvision's weights expect.

    The weights are torchvision's ``Inception_V3_Weights.IMAGENET1K_V1``, read from a local file;
    nothing is downloaded. The original FID code uses an earlier TensorFlow release of the
    Inception weights (inception-2015-12-05, which pytorch-fid ports to PyTorch) and a network
    that differs from torchvision's in a few layers. So distances computed here are not the
    same as published FID values. On 2 CPU cores it processed 13 images a
    second (200 RGB images of 64 x 64 in 14.9 s, batch 50). Notebook 05's CelebA comparison has
    about 23,000 images, which would take about half an hour there, so use a GPU for such runs.

    NOTE: the real weight file has not been loaded here, because it was not in the cache. The
    tests run an untrained network and a state dict saved from one, so they check the wiring
    and the file checks, not the feature values.

    Args:
        weights: path of the weight file; default: :func:`inception_weights_available`'s file.
        device: where the network runs.
        batch_size: images per forward pass.
        network: an Inception v3 module to use instead of loading weights, for example one built
            without weights to check the wiring. Its features then mean nothing.

    Raises:
        ConfigurationError: no weight file, a corrupt one, or one that is not an Inception v3
            state dict; the message names the path and the fix.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 50,
        network: nn.Module | None = None,
    ) -> None:
        self.batch_size = _check_positive("batch_size", batch_size)
        self.device = torch.device(device)
        if network is None:
            path = Path(weights) if weights is not None else inception_weights_available()
            if path is None:
                from torchvision.models import Inception_V3_Weights

                path = Path(torch.hub.get_dir()) / "checkpoints" / Inception_V3_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
            _check_weight_file(path)
            network = _inception_network()
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                network.load_state_dict(state)
            except (RuntimeError, TypeError, AttributeError, EOFError, ValueError) as error:
                raise ConfigurationError(
                    f"{path} is not a state dict of torchvision's Inception v3 ({type(error).__name__}: {str(error)[:200]}); "
                    "use the file of Inception_V3_Weights.IMAGENET1K_V1"
                ) from error
            self.weights: Path | None = path
        else:
            self.weights = None
        self.network = network.to(self.device).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Return the network's input for ``images``: 3 channels, 299 x 299, ImageNet-normalised."""
        images = _check_images(images).to(self.device)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] != 3:
            raise ConfigurationError(f"images must have 1 (grey) or 3 (RGB) channels, got {images.shape[1]}")
        images = F.interpolate(images, size=(INCEPTION_IMAGE_SIDE, INCEPTION_IMAGE_SIDE), mode="bilinear", align_corners=False)
        return (images - self._mean) / self._std

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        images = _check_images(images)
        parts = []
        with torch.no_grad():
            for start in range(0, images.shape[0], self.batch_size):
                features = self.network(self.preprocess(images[start : start + self.batch_size]))
                parts.append(features.double().cpu())
        features = torch.cat(parts).numpy()
        if features.shape[1] != INCEPTION_FEATURES:
            raise ConfigurationError(f"the network returned {features.shape[1]} features per image, expected {INCEPTION_FEATURES}; pass an Inception v3 whose fc is nn.Identity()")
        return features


@dataclass(frozen=True)
class SampleQuality:
    """Sample-quality metrics of one sampler, as mean and sample standard deviation over its draws.

    The standard deviations are None when there is only one draw. Fréchet distances are in
    squared feature units of the trained classifier (not Inception FID), and precision and
    recall are shares in [0, 1].
    """

    name: str
    draws: int
    frechet_distance: float
    frechet_distance_sd: float | None
    precision: float
    precision_sd: float | None
    recall: float
    recall_sd: float | None
    k: int


def _mean_and_sd(values: list[float]) -> tuple[float, float | None]:
    mean = float(np.mean(values))
    return mean, (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def evaluate_samples(
    feature_extractor: FeatureClassifier | FeatureExtractor,
    real_images: torch.Tensor,
    sample_sets: Mapping[str, torch.Tensor | Sequence[torch.Tensor]],
    k: int = 3,
    batch_size: int = 500,
    chunk: int = 1024,
    device: torch.device | str = "cpu",
) -> dict[str, SampleQuality]:
    """Compare every sample set with held-out real images by Fréchet distance, precision and recall.

    Args:
        feature_extractor: a trained :class:`FeatureClassifier` (features from
            :func:`extract_features`) or any callable mapping images to features (N, F).
        real_images: held-out images (N, C, H, W) in [0, 1] that the classifier did not train on.
        sample_sets: sampler name -> generated images (N, C, H, W), or a sequence of such
            tensors, one per independent draw.
        device: where the pairwise distances for precision and recall are computed.

    Returns:
        sampler name -> :class:`SampleQuality`, in the order of ``sample_sets``.
    """
    if not sample_sets:
        raise ConfigurationError("sample_sets is empty; pass at least one {name: images} entry")
    k = _check_positive("k", k)
    chunk = _check_positive("chunk", chunk)

    def features_of(images: torch.Tensor) -> np.ndarray:
        if isinstance(feature_extractor, FeatureClassifier):
            return extract_features(feature_extractor, images, batch_size=batch_size)
        return np.asarray(feature_extractor(images), dtype=np.float64)

    real = _check_features("real features", features_of(real_images), minimum_rows=2)
    real_mean, real_covariance = real.mean(axis=0), np.cov(real, rowvar=False).reshape(real.shape[1], real.shape[1])
    real_tensor = _as_tensor(real, device)
    radii_by_k: dict[int, torch.Tensor] = {}

    results = {}
    for name, draws in sample_sets.items():
        draw_list = [draws] if isinstance(draws, torch.Tensor) else list(draws)
        if not draw_list:
            raise ConfigurationError(f"sample set {name!r} has no draws; pass a tensor of images or a non-empty list of them")
        distances, precisions, recalls = [], [], []
        for draw in draw_list:
            fake = _check_features(f"features of {name!r}", features_of(draw), minimum_rows=2)
            _check_same_width(real, fake)
            checked_k = _check_k(k, real.shape[0], fake.shape[0])
            with torch.no_grad():
                if checked_k not in radii_by_k:
                    radii_by_k[checked_k] = _kth_neighbour_radii(real_tensor, checked_k, chunk)
                fake_tensor = _as_tensor(fake, device)
                fake_radii = _kth_neighbour_radii(fake_tensor, checked_k, chunk)
                precision, recall = _manifold_coverage(real_tensor, radii_by_k[checked_k], fake_tensor, fake_radii, chunk)
            fake_covariance = np.cov(fake, rowvar=False).reshape(fake.shape[1], fake.shape[1])
            distances.append(frechet_distance_gaussian(real_mean, real_covariance, fake.mean(axis=0), fake_covariance))
            precisions.append(precision)
            recalls.append(recall)
        fd_mean, fd_sd = _mean_and_sd(distances)
        precision_mean, precision_sd = _mean_and_sd(precisions)
        recall_mean, recall_sd = _mean_and_sd(recalls)
        results[name] = SampleQuality(name, len(draw_list), fd_mean, fd_sd, precision_mean, precision_sd, recall_mean, recall_sd, k)
    return results
