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


def test_hungarian_accuracy_check():
    confusion = np.array([[0, 5], [4, 1]])
    assert exercises.check_hungarian_accuracy(0.9, confusion)
    assert not exercises.check_hungarian_accuracy(0.5, confusion)


def test_assignment_information_check(capsys):
    assert exercises.check_confident_assignment_information(np.log(10))
    assert not exercises.check_confident_assignment_information(np.log2(10))
    assert "bits" in capsys.readouterr().out


def test_one_hot_tc_check():
    p = np.array([0.5, 0.25, 0.25])
    value = -(p * np.log(p) + (1 - p) * np.log(1 - p)).sum() + (p * np.log(p)).sum()
    assert exercises.check_one_hot_tc(value)
    assert not exercises.check_one_hot_tc(0.0)


def test_notebook04_checks():
    assert exercises.check_anchor_weight(0.7, 0.3)
    assert not exercises.check_anchor_weight(0.3, 0.3)
    assert exercises.check_information_ceiling(np.log(4560), 4560)
    assert not exercises.check_information_ceiling(np.log2(4560), 4560)
    assert exercises.check_binary_mutual_information(0.8 * np.log(1.6) + 0.2 * np.log(0.4))
    assert not exercises.check_binary_mutual_information(0.5)


def test_notebook05_checks():
    assert exercises.check_mixture_variance(4.25)
    assert not exercises.check_mixture_variance(0.25)
    variances = np.array([0.1, 1.0, 3.0])
    assert exercises.check_variance_count(2, variances)
    assert not exercises.check_variance_count(1, variances)
    assert exercises.check_frechet_1d(2.0)
    assert not exercises.check_frechet_1d(1.0)
