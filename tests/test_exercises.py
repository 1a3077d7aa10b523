import numpy as np
import torch

from corex_edu import exercises, gaussian


def test_tc_check(capsys):
    truth = gaussian.total_correlation(exercises.EXERCISE_01_COVARIANCE)
    assert exercises.check_tc_three_variables(truth)
    assert not exercises.check_tc_three_variables(truth / np.log(2))
    assert "bits" in capsys.readouterr().out


def test_rho_check():
    assert exercises.check_rho_for_one_nat(np.sqrt(1 - np.exp(-2)))
    assert not exercises.check_rho_for_one_nat(0.5)


def test_gap_decomposition_check():
    assert exercises.check_gap_decomposition(3.0, 1.0, 1.5, 0.2, 0.3)
    assert not exercises.check_gap_decomposition(3.0, 1.0, 1.5, 0.2, 0.0)


def test_marginal_entropy_check(capsys):
    images = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert exercises.check_marginal_entropy_sum(np.log(2), images)
    assert not exercises.check_marginal_entropy_sum(1.0, images)
    assert "bits" in capsys.readouterr().out


def test_kl_check(capsys):
    assert exercises.check_gaussian_kl(lambda m, v: 0.5 * (v.exp() + m**2 - 1 - v))
    assert not exercises.check_gaussian_kl(lambda m, v: (0.5 * (v.exp() + m**2 - 1 - v)).sum(dim=1))
    assert not exercises.check_gaussian_kl(lambda m, v: 1 / 0)
    output = capsys.readouterr().out
    assert "do not sum" in output
    assert "ZeroDivisionError" in output


def test_constant_pixel_check():
    images = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    assert exercises.check_constant_pixels(2, images)
    assert not exercises.check_constant_pixels(1, images)
