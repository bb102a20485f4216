import numpy as np
import pytest
import torch

import rnnattn
from rnnattn.lsrl import (
    CompiledLSRL,
    CompiledLSRLConfig,
    Input,
    LinState,
    compile,
    linear_scan,
    perturb_nonzeros,
    random_token_map,
    token_answer,
    token_program,
    token_prompt,
)
from rnnattn.lsrl.modules import _doubling_scan


@pytest.fixture(scope="module")
def token3():
    cp = compile(token_program(3, "multiplicative"))
    rng = np.random.default_rng(0)
    maps = [random_token_map(3, 8, 10, rng) for _ in range(5)]
    keys = [list(m)[i] for i, m in enumerate(maps)]
    prompts = [token_prompt(k, m) for k, m in zip(keys, maps, strict=True)]
    X = torch.as_tensor(np.stack(prompts), dtype=torch.float64)
    return cp, maps, keys, X


def test_module_matches_ir_and_sequential(token3):
    cp, maps, keys, X = token3
    m = cp.to_module()
    y = m(X)
    torch.testing.assert_close(y, m.forward_sequential(X), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(y.detach().numpy(), cp.run(X.numpy()), rtol=1e-9, atol=1e-6)
    for i in range(len(maps)):
        assert token_answer(y[i].detach().numpy(), 3) == list(maps[i][keys[i]])
    assert m.state_dim() == cp.stats().state_dim and m.nnz() <= cp.stats().nnz


def test_streaming_state(token3):
    cp, _, _, X = token3
    m = cp.to_module()
    y = m(X)
    y1, s = m(X[:, :20], return_state=True)
    y2 = m(X[:, 20:], state=s)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-9, atol=1e-6)
    yt, st = m.step(X[:, 0])
    torch.testing.assert_close(yt, y[:, 0])


def test_hooks_and_teacher_forcing(token3):
    cp, _, _, X = token3
    m = cp.to_module()
    y, cache = m.run_with_cache(X)
    ks = m.state_stages()
    assert f"stages.{ks[0]}.hook_out" in cache and "hook_y" in cache
    teacher = [cache[f"stages.{k}.hook_out"] for k in ks]
    torch.testing.assert_close(m(X, teacher_states=teacher), y)


def test_float32_export_small_program():
    x = Input(2)
    cp = compile(LinState(x, [[0, 1], [1, 0]], np.eye(2), init_state=[1, 0]) * 2)
    xs = np.random.default_rng(0).normal(size=(3, 7, 2))
    m32 = cp.to_module(torch.float32)
    assert m32.readout.weight.dtype == torch.float32
    np.testing.assert_allclose(
        m32(torch.as_tensor(xs, dtype=torch.float32)).detach().numpy(), cp.run(xs), rtol=1e-5, atol=1e-5
    )


def test_float32_rule_refuses_large_constant_programs():
    """Issue 15: measured, the token program in float32 answers every query wrongly (n = 2..5, all variants);
    so programs with weights >= LARGE_WEIGHT are refused (or warned about on request)."""
    from rnnattn.lsrl import LSRLPrecisionError, float32_issue, token_program

    cp = compile(token_program(2, "multiplicative"))
    assert float32_issue(cp) is not None
    with pytest.raises(LSRLPrecisionError, match="unsafe"):
        cp.to_module(torch.float32)
    with pytest.warns(UserWarning, match="unsafe"):
        m = cp.to_module(torch.float32, allow_unsafe=True)
    assert m.readout.weight.dtype == torch.float32
    cp.to_module(torch.float64)  # float64 never refused


def test_float32_rule_warns_on_probe_disagreement():
    """Small weights but a cancellation float32 cannot resolve: ReLU(x / 1000 + 9000) - 9000 = x / 1000 (the
    spacing of float32 at 9000 is ~1e-3)."""
    x = Input(1)
    from rnnattn.lsrl import ReLU, float32_issue

    cp = compile(ReLU(x * 0.001 + 9000) - 9000)

    assert float32_issue(cp) is None
    with pytest.warns(UserWarning, match="differs from float64"):
        cp.to_module(torch.float32)


def test_save_load_roundtrip(tmp_path, token3):
    cp, _, _, X = token3
    m = cp.to_module()
    path = rnnattn.save(m, tmp_path / "tok.safetensors", note="lsrl")
    m2 = rnnattn.load(path)
    assert isinstance(m2, CompiledLSRL) and m2.config == m.config and m2.metadata["note"] == "lsrl"
    assert torch.equal(m2(X), m(X))
    assert CompiledLSRLConfig.from_dict(m.config.to_dict()) == m.config


def test_perturb_only_nonzeros(token3):
    cp, _, _, _ = token3
    m = cp.to_module()
    before = [p.detach().clone() for p in m.parameters()]
    perturb_nonzeros(m, 1e-3, torch.Generator().manual_seed(0))
    for b, p in zip(before, m.parameters(), strict=False):
        assert torch.equal(b == 0, p == 0)
        assert (p != b).any() or (b == 0).all()


@pytest.mark.parametrize(
    "A",
    [
        np.eye(3),
        np.zeros((3, 3)),
        np.diag([1, 0, 0.5]),
        np.roll(np.eye(3), 1, 0),
        np.array([[0.9, -0.2, 0], [0.1, 0.8, 0], [0, 0, 1]]),
    ],
)
def test_linear_scan_matches_loop(A):
    g = torch.Generator().manual_seed(0)
    A = torch.as_tensor(A, dtype=torch.float64)
    u = torch.randn(2, 37, 3, generator=g, dtype=torch.float64)
    s0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    s, ref = s0, []
    for t in range(37):
        s = s @ A.T + u[:, t]
        ref.append(s)
    torch.testing.assert_close(linear_scan(A, u, s0), torch.stack(ref, 1))
    torch.testing.assert_close(_doubling_scan(A, u, s0), torch.stack(ref, 1))


def test_config_validation():
    with pytest.raises(ValueError):
        CompiledLSRLConfig(d_input=1, d_output=1, kinds=("conv",), widths=(3,))
    with pytest.raises(ValueError):
        CompiledLSRLConfig(d_input=1, d_output=1, kinds=("relu",), widths=())
