import dataclasses

import numpy as np
import pytest
import torch

from corex_edu import toy


def test_population_bound_matches_monte_carlo_for_random_parameters():
    config = toy.ToyConfig()
    torch.manual_seed(3)
    model = toy.build_linear_corex(config.observed, config.latents)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.3 * torch.randn_like(parameter))
    exact = toy.population_bound(model, toy.factor_model(config).covariance).bound
    estimate, standard_error = toy.monte_carlo_bound(model, config, samples=200_000, seed=11)
    assert abs(estimate - exact) < 4 * standard_error


def test_bound_never_exceeds_objective_or_tc():
    config = toy.ToyConfig()
    covariance = toy.factor_model(config).covariance
    for seed in range(5):
        torch.manual_seed(seed)
        model = toy.build_linear_corex(config.observed, config.latents)
        terms = toy.decomposition(model, covariance)
        bound = toy.population_bound(model, covariance).bound
        assert bound <= terms.corex_objective + 1e-9
        assert terms.corex_objective <= terms.tc_x + 1e-9


def test_fit_reaches_tc_only_with_enough_latents():
    settings = toy.PROFILES["quick"]
    fit = toy.fit_toy(settings.fit, progress=False)
    underfit = toy.fit_toy(settings.underfit, progress=False)
    assert 0.0 <= fit.gap < 0.05
    assert underfit.gap > 10 * fit.gap
    assert fit.history.epochs[-1]["tc_x_given_z"] < fit.history.epochs[0]["tc_x_given_z"]


def test_estimator_sweep_shapes():
    sweep = toy.estimator_sweep(0.5, (50, 100), seeds=3)
    assert set(sweep) == {"KSG kNN (k=3)", "Gaussian plug-in"}
    assert all(values.shape == (2, 3) for values in sweep.values())


def test_closed_form_rejects_nonlinear_models():
    from corex_edu.errors import ConfigurationError
    from corex_edu.models import CorExAutoencoder, GaussianDecoder, GaussianEncoder

    model = CorExAutoencoder(GaussianEncoder(4, 2, hidden=(8,), variance="global"), GaussianDecoder(2, 4, hidden=()))
    with pytest.raises(ConfigurationError, match="linear"):
        toy.population_bound(model, np.eye(4))


def test_profiles_differ_only_in_size():
    for settings in toy.PROFILES.values():
        assert settings.fit.latents >= settings.fit.factors
        assert settings.underfit.latents < settings.underfit.factors
        assert dataclasses.replace(settings.fit, latents=1, train=settings.underfit.train, train_samples=settings.underfit.train_samples) == settings.underfit
