"""One-step GD (App. C.2, Eq. 36): closed forms against sympy and Monte Carlo."""

import math

import sympy as sp
import torch

from rnnattn.tasks import (
    InContextRegression,
    InContextRegressionConfig,
    gd_loss,
    one_step_gd_predict,
    optimal_gd_learning_rate,
    optimal_gd_loss,
)


def test_paper_values():
    assert math.isclose(optimal_gd_learning_rate(12, 3), 1 / 14.8, rel_tol=1e-12)
    assert math.isclose(optimal_gd_loss(12, 3, 1 / 3), 0.094595, abs_tol=5e-7)
    assert math.isclose(optimal_gd_loss(12, 3, 2 / 3), 0.18919, abs_tol=5e-6)
    assert math.isclose(gd_loss(1 / 14.8, 12, 3), optimal_gd_loss(12, 3), rel_tol=1e-12)


def test_eta_star_minimises_the_loss_symbolically():
    eta, n, d, s2, k, w2 = sp.symbols("eta n d s2 k w2", positive=True)
    L = sp.Rational(1, 2) * w2 * s2 * d * (1 - 2 * eta * n * s2 + eta**2 * n * s2**2 * (n + d - 2 + k))
    star = sp.solve(sp.diff(L, eta), eta)[0]
    assert sp.simplify(star - 1 / (s2 * (n + d - 2 + k))) == 0
    Lstar = sp.simplify(L.subs(eta, star))
    assert sp.simplify(Lstar - sp.Rational(1, 2) * w2 * s2 * d * (d - 2 + k) / (n + d - 2 + k)) == 0
    for vals in (
        {n: 12, d: 3, s2: 1, k: sp.Rational(9, 5), w2: sp.Rational(1, 3)},
        {n: 5, d: 2, s2: 2, k: 3, w2: 1},
    ):
        f = {"n": int(vals[n]), "d_x": int(vals[d]), "sigma_x2": float(vals[s2]), "kurtosis": float(vals[k])}
        assert math.isclose(optimal_gd_learning_rate(**f), float(star.subs(vals)), rel_tol=1e-12)
        assert math.isclose(
            optimal_gd_loss(sigma_w2=float(vals[w2]), **f), float(Lstar.subs(vals)), rel_tol=1e-12
        )


def test_predictor_equals_an_explicit_gradient_step():
    g = torch.Generator().manual_seed(0)
    task = InContextRegression(InContextRegressionConfig(n_context=5))
    x = task.sample(3, g).x.double()
    eta = 0.1
    for b in range(3):
        W = torch.zeros(3, 3, dtype=torch.float64)
        grad = sum(torch.outer(W @ x[b, i, :3] - x[b, i, 3:], x[b, i, :3]) for i in range(5))
        W1 = W - eta * grad  # gradient of 0.5 sum ||W x - y||^2
        torch.testing.assert_close(one_step_gd_predict(x[b : b + 1], 3, eta)[0], W1 @ x[b, -1, :3])


def _mc_loss(task, eta, n, seed, validation=False):
    g = torch.Generator().manual_seed(seed)
    b = task.sample(n, g, validation=validation)
    err = (task.gd_prediction(b.x.double(), eta)[:, -1] - b.y.double()[:, -1]) ** 2
    per_seq = 0.5 * err.mean(dim=1)
    return per_seq.mean().item(), per_seq.std().item() / math.sqrt(n)


def test_monte_carlo_matches_closed_form():
    task = InContextRegression()
    n = 200_000
    for eta in (task.eta_star, 0.06, 0.075):
        mc, se = _mc_loss(task, eta, n, seed=1)
        assert abs(mc - gd_loss(eta, 12, 3)) < 4 * se, (eta, mc, gd_loss(eta, 12, 3), se)
    mc, se = _mc_loss(task, task.eta_star, n, seed=2, validation=True)
    assert abs(mc - task.optimal_gd_loss(validation=True)) < 4 * se
    assert abs(task.reference_loss(task.validation_set(n, 3)) - task.optimal_gd_loss(True)) < 4 * se


def test_monte_carlo_normal_inputs_use_kurtosis_three():
    task = InContextRegression(
        InContextRegressionConfig(n_context=6, d_x=2, d_y=2, x_dist="normal", x_var=0.5)
    )
    eta = task.eta_star
    assert math.isclose(eta, 1 / (0.5 * (6 + 2 - 2 + 3)))
    mc, se = _mc_loss(task, eta, 200_000, seed=4)
    assert abs(mc - task.optimal_gd_loss()) < 4 * se
