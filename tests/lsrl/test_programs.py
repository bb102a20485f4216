import numpy as np
import pytest

from rnnattn.lsrl import (
    IFELSE_VARIANTS,
    compile,
    continuous_error_bound,
    continuous_program,
    continuous_prompt,
    random_token_map,
    run,
    token_answer,
    token_program,
    token_prompt,
)


@pytest.fixture(scope="module")
def token_compiled():
    return {v: compile(token_program(3, v), mode="exact") for v in IFELSE_VARIANTS}


@pytest.mark.parametrize("variant", IFELSE_VARIANTS)
def test_token_program_every_key_exact(variant, token_compiled):
    rng = np.random.default_rng(1)
    table = random_token_map(3, 6, 10, rng)
    cp = token_compiled[variant]
    for key, value in table.items():
        ys = cp.run(token_prompt(key, table))
        assert token_answer(ys, 3) == list(value)
        assert all(isinstance(v, int) for v in ys[-3:, 0])  # exact integers, no rounding involved
    missing = (9, 9, 9) if (9, 9, 9) not in table else (8, 8, 8)
    assert token_answer(cp.run(token_prompt(missing, table)), 3) == [0, 0, 0]


@pytest.mark.parametrize("variant", ["direct", "multiplicative_optimized"])
def test_token_program_interpreter_equals_compiled_exact(variant, token_compiled):
    rng = np.random.default_rng(2)
    table = random_token_map(3, 20, 26, rng)
    xs = token_prompt(list(table)[11], table)
    assert (run(token_program(3, variant), xs, mode="exact") == token_compiled[variant].run(xs)).all()


def test_token_program_rotation_counter_and_float64():
    rng = np.random.default_rng(3)
    table = random_token_map(2, 10, 5, rng)
    key = list(table)[4]
    p = token_program(2, "multiplicative", counter="rotation")
    assert token_answer(run(p, token_prompt(key, table), mode="exact"), 2) == list(table[key])
    cp = compile(token_program(4, "optimized"))
    table = random_token_map(4, 20, 10, rng)
    key = list(table)[-1]
    assert token_answer(cp.run(token_prompt(key, table)), 4) == list(table[key])


def test_token_sizes_beat_reference():
    for n, direct_ref, mult_ref in [(3, 296_609, 5_111), (5, 454_407, 7_775)]:
        d = compile(token_program(n, "direct")).stats()
        m = compile(token_program(n, "multiplicative")).stats()
        assert d.state_dim < direct_ref / 100 and m.state_dim < mult_ref / 10


@pytest.mark.parametrize("variant", IFELSE_VARIANTS)
@pytest.mark.parametrize("d_in,d_out,N", [(1, 1, 10), (2, 1, 5), (1, 2, 6)])
def test_continuous_program_within_bound_exact(variant, d_in, d_out, N):
    rng = np.random.default_rng(d_in * 10 + d_out)
    W = rng.normal(size=(d_out, d_in))
    L = np.linalg.norm(W, 2)

    def f(x):
        return W @ x + 0.5

    cp = compile(continuous_program(d_in, d_out, variant), mode="exact")
    bound = continuous_error_bound(L, d_in, N)
    for _ in range(3):
        # keep queries >= 1/mu away from cell boundaries (inside the bump's ramp the value is blended)
        cell = rng.integers(0, N, size=d_in)
        q = (cell + rng.uniform(0.05, 0.95, size=d_in)) / N
        ys = cp.run(continuous_prompt(f, d_in, d_out, N, q))
        err = np.linalg.norm(np.asarray(ys[-1], float) - f(q))
        assert err <= bound + 1e-12


def test_continuous_program_float64_robust_variants():
    """In float64 the multiplicative forms stay within the bound; the ReLU forms fuse lambda * mu = 1e13 into
    single weights, so their compiled float64 models carry errors of order eps * 1e13 per token (see the noise
    study)."""
    f = np.sin
    for variant in ("multiplicative", "multiplicative_optimized"):
        cp = compile(continuous_program(1, 1, variant))
        for q in (0.13, 0.51, 0.97):
            y = cp.run(continuous_prompt(f, 1, 1, 20, [q]))[-1, 0]
            assert abs(y - np.sin(q)) <= continuous_error_bound(1.0, 1, 20) + 1e-9


def _f2(x):
    return np.array([np.sin(3 * x[0]) - x[1], np.cos(2 * x[1]) * x[0] + 0.5])


@pytest.mark.parametrize("variant", IFELSE_VARIANTS)
def test_continuous_program_float64_exact_at_cell_centres(variant):
    """Issue 15: at a cell centre the answer is f(centre) itself, so compiled float64 (scipy runner and torch
    module) must return the TRUE value up to a few ulps. Before the fix: 8 of 64 entries off by up to 0.25
    (direct/optimized), ~1e-6 (step forms, ``t + lam - lam``), ~2e-9 (multiplicative)."""
    import torch

    N = 4
    cp = compile(continuous_program(2, 2, variant))
    m = cp.to_module()
    tol = 4 * np.finfo(float).eps * 2  # |f| <= 2
    for i in range(N):
        for j in range(N):
            q = (np.array([i, j]) + 0.5) / N
            xs = continuous_prompt(_f2, 2, 2, N, q)
            assert np.abs(cp.run(xs)[-1] - _f2(q)).max() <= tol, (variant, q)
            y_mod = m(torch.as_tensor(xs)[None])[0, -1].detach().numpy()
            assert np.abs(y_mod - _f2(q)).max() <= tol, (variant, q)


@pytest.mark.parametrize("variant", ["direct", "step_optimized", "multiplicative"])
def test_continuous_program_float64_agrees_with_interpreter_near_edges(variant):
    """Issue 15 stretch: queries within 1e-3 of a cell edge (inside the bump's ramp, where the value is a
    blend) - compiled float64 equals the float64 interpreter (before: 40 of 40 entries differed by > 1e-9,
    direct up to 0.81)."""
    N = 8
    p = continuous_program(2, 2, variant)
    cp = compile(p)
    rng = np.random.default_rng(0)
    for _ in range(8):
        idx = rng.integers(1, N, size=2)
        q = (idx + rng.choice([-1, 1], size=2) * rng.uniform(1e-5, 1e-3, size=2)) / N
        xs = continuous_prompt(_f2, 2, 2, N, q)
        want = run(p, xs)[-1]
        assert np.abs(cp.run(xs)[-1] - want).max() <= 1e-12 * (1 + np.abs(want).max()), (variant, q)


def test_continuous_sizes_beat_reference():
    for d, direct_state, mult_state in [(1, 52, 31), (2, 90, 53), (3, 128, 75)]:
        assert compile(continuous_program(d, d, "direct")).stats().state_dim < direct_state / 2
        assert compile(continuous_program(d, d, "multiplicative")).stats().state_dim < mult_state / 2


def test_prompt_builders_validate():
    with pytest.raises(ValueError):
        token_prompt([1, 2], {(1, 2): (3,)})
    with pytest.raises(ValueError):
        token_prompt([1, 2], [((1, 2), (3, 4)), ((1, 2), (5, 6))])
    p = continuous_prompt(lambda x: x.sum(), 2, 1, 3, [0.1, 0.2])
    assert p.shape == (10, 4) and p[0, :2].tolist() == [0.1, 0.2] and p[1, 0] == pytest.approx(1 / 3)
