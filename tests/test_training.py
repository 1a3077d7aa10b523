import pytest
import torch

from corex_edu import checkpoints
from corex_edu.errors import CheckpointMismatchError, ConfigurationError, DataIntegrityError, NonFiniteLossError
from corex_edu.models import BernoulliDecoder, CorExAutoencoder, GaussianEncoder
from corex_edu.objectives import corex_bound
from corex_edu.training import TrainConfig, fit, load_or_train

DATA = (torch.rand(256, 12, generator=torch.Generator().manual_seed(0)) > 0.5).float()
CONFIG = TrainConfig(epochs=3, batch_size=64, learning_rate=1e-2)


def new_model(seed=0):
    torch.manual_seed(seed)
    return CorExAutoencoder(GaussianEncoder(12, 3, hidden=(16,)), BernoulliDecoder(3, 12, hidden=(16,)))


def objective(model, batch, generator):
    return corex_bound(model, batch, generator=generator)


def parameters_of(model):
    return torch.cat([parameter.detach().flatten() for parameter in model.parameters()])


def test_training_is_deterministic():
    first, second = new_model(), new_model()
    fit(first, DATA, CONFIG, objective, progress=False)
    fit(second, DATA, CONFIG, objective, progress=False)
    assert torch.equal(parameters_of(first), parameters_of(second))


def test_training_improves_the_bound():
    history = fit(new_model(), DATA, TrainConfig(epochs=20, batch_size=64, learning_rate=1e-2), objective, progress=False)
    assert history.epochs[-1]["bound"] > history.epochs[0]["bound"]
    assert len(history.steps) == 20 * 4


class Interrupt(Exception):
    pass


def test_interrupted_training_resumes_exactly(tmp_path):
    uninterrupted = new_model()
    fit(uninterrupted, DATA, CONFIG, objective, progress=False)

    path = tmp_path / "model.pt"
    calls = []

    def stop_after_first_epoch(model):
        calls.append(1)
        if len(calls) == 1:
            raise Interrupt
        return {}

    with pytest.raises(Interrupt):
        fit(new_model(), DATA, CONFIG, objective, checkpoint_path=path, progress=False, on_epoch_end=stop_after_first_epoch)
    assert not path.exists()  # the interrupt came before the first save

    def stop_in_second_epoch(model):
        calls.append(1)
        if len(calls) == 3:
            raise Interrupt
        return {}

    with pytest.raises(Interrupt):
        fit(new_model(), DATA, CONFIG, objective, checkpoint_path=path, progress=False, on_epoch_end=stop_in_second_epoch)
    assert torch.load(path, weights_only=False)["epoch"] == 1

    resumed = new_model(seed=99)  # different initial weights: everything must come from the checkpoint
    history = fit(resumed, DATA, CONFIG, objective, checkpoint_path=path, progress=False)
    assert history.resumed_from_epoch == 1
    assert torch.allclose(parameters_of(resumed), parameters_of(uninterrupted), atol=1e-6)


def test_finished_checkpoint_is_loaded_without_training(tmp_path):
    path = tmp_path / "model.pt"
    trained = new_model()
    load_or_train(trained, DATA, CONFIG, objective, path, progress=False)
    loaded = new_model(seed=5)
    history = load_or_train(loaded, DATA, CONFIG, objective, path, progress=False)
    assert history.loaded_from_checkpoint
    assert len(history.epochs) == CONFIG.epochs
    assert torch.equal(parameters_of(loaded), parameters_of(trained))


def test_checkpoint_from_another_config_is_rejected(tmp_path):
    path = tmp_path / "model.pt"
    fit(new_model(), DATA, CONFIG, objective, checkpoint_path=path, checkpoint_config={"latents": 3}, progress=False)
    with pytest.raises(CheckpointMismatchError) as caught:
        fit(new_model(), DATA, TrainConfig(epochs=3, batch_size=32, learning_rate=1e-2), objective, checkpoint_path=path, checkpoint_config={"latents": 3}, progress=False)
    message = str(caught.value)
    assert "batch_size" in message
    assert "64" in message
    assert "32" in message
    assert f"Delete {path}" in message


def test_checkpoint_with_other_architecture_is_rejected(tmp_path):
    path = tmp_path / "model.pt"
    fit(new_model(), DATA, CONFIG, objective, checkpoint_path=path, progress=False)
    other = CorExAutoencoder(GaussianEncoder(12, 3, hidden=(32,)), BernoulliDecoder(3, 12, hidden=(16,)))
    with pytest.raises(CheckpointMismatchError, match="architecture"):
        fit(other, DATA, CONFIG, objective, checkpoint_path=path, progress=False)


def test_corrupt_checkpoint_is_reported(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataIntegrityError, match="delete it"):
        fit(new_model(), DATA, CONFIG, objective, checkpoint_path=path, progress=False)


def test_nan_loss_names_the_step():
    data = DATA.clone()
    data[70, 0] = float("nan")  # one full-size batch, so the first step already includes the NaN row
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step \d") as caught:
        fit(new_model(), data, TrainConfig(epochs=1, batch_size=256), objective, progress=False)
    assert "learning_rate" in str(caught.value)


def test_invalid_hyper_parameters():
    with pytest.raises(ConfigurationError, match="epochs"):
        TrainConfig(epochs=0, batch_size=1)
    with pytest.raises(ConfigurationError, match="batch_size"):
        TrainConfig(epochs=1, batch_size=-4)
    with pytest.raises(ConfigurationError, match="learning_rate"):
        TrainConfig(epochs=1, batch_size=1, learning_rate=float("nan"))


def test_fingerprint_lists_differences():
    first = checkpoints.fingerprint({"a": 1, "b": (1, 2)})
    second = checkpoints.fingerprint({"a": 2, "b": (1, 2)})
    assert checkpoints.describe_mismatch(first, second) == ["a: saved 1, current 2"]
