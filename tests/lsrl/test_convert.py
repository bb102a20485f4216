import numpy as np
import pytest
import torch

import rnnattn
from rnnattn.lsrl import (
    Concat,
    ConversionError,
    Input,
    LinState,
    Multiplicative,
    ReLU,
    compile,
    convert,
    random_token_map,
    to_elman,
    to_mamba,
    token_answer,
    token_program,
    token_prompt,
)

ARCHS = ["elman", "gru", "lstm", "hawk"]


def _small_program():
    x = Input(2)
    s = LinState(x, [[0, 1], [-1, 0]], np.eye(2), init_state=[1, -2])
    return Concat([ReLU(s - x), Multiplicative(Concat([s, x])), s])


@pytest.mark.parametrize("arch", ARCHS)
def test_conversion_reproduces_compiled(arch):
    cp = compile(_small_program())
    xs = torch.as_tensor(np.random.default_rng(0).normal(size=(3, 9, 2)))
    if arch == "elman":
        with pytest.raises(ConversionError, match="multiplicative"):
            to_elman(cp)
        x = Input(2)
        cp = compile(ReLU(LinState(x, [[0, 1], [-1, 0]], np.eye(2), init_state=[1, -2]) - x))
    m = convert(cp, arch, **({"max_len": 9} if arch == "hawk" else {}))
    want = cp.run(xs.numpy())
    np.testing.assert_allclose(m(xs).detach().numpy(), want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("arch", ARCHS)
def test_token_program_conversions(arch, tmp_path):
    variant = "optimized" if arch == "elman" else "multiplicative"
    cp = compile(token_program(3, variant))
    rng = np.random.default_rng(5)
    maps = [random_token_map(3, 4, 10, rng) for _ in range(3)]
    keys = [list(m)[1] for m in maps]
    prompts = [token_prompt(k, m) for k, m in zip(keys, maps, strict=True)]
    X = torch.as_tensor(np.stack(prompts), dtype=torch.float64)
    module = cp.to_module()
    m = convert(module, arch, **({"max_len": X.shape[1]} if arch == "hawk" else {}))
    y = m(X)
    for i in range(3):
        assert token_answer(y[i].detach().numpy(), 3) == list(maps[i][keys[i]])
    path = rnnattn.save(m, tmp_path / f"{arch}.safetensors")
    assert torch.equal(rnnattn.load(path)(X), y)


def test_hawk_rejects_long_sequences_and_streams():
    cp = compile(_small_program())
    m = convert(cp, "hawk", max_len=4)
    with pytest.raises(ValueError, match="up to 4"):
        m(torch.zeros(1, 5, 2, dtype=torch.float64))
    with pytest.raises(ValueError):
        m(torch.zeros(1, 3, 2, dtype=torch.float64), state=())


def test_mamba_and_unknown():
    with pytest.raises(NotImplementedError, match="no Mamba"):
        to_mamba(compile(_small_program()))
    with pytest.raises(ValueError):
        convert(compile(_small_program()), "transformer")


def test_checkpoints_load_in_a_fresh_process(tmp_path):
    """The registry imports rnnattn.lsrl lazily; every LSRL model class must be registered by that import."""
    import subprocess
    import sys

    cp = compile(ReLU(LinState(Input(1), 1, 1) - 2))
    names = []
    for arch in ARCHS:
        m = convert(cp, arch, **({"max_len": 5} if arch == "hawk" else {}))
        rnnattn.save(m, tmp_path / f"{arch}.safetensors")
        names.append(str(tmp_path / f"{arch}.safetensors"))
    rnnattn.save(cp.to_module(), tmp_path / "compiled.safetensors")
    names.append(str(tmp_path / "compiled.safetensors"))
    code = (
        "import sys, torch, rnnattn\n"
        "for p in sys.argv[1:]:\n"
        "    y = rnnattn.load(p)(torch.ones(1, 4, 1, dtype=torch.float64))\n"
        "    assert y[0, :, 0].tolist() == [0.0, 0.0, 1.0, 2.0], (p, y)\n"
    )
    subprocess.run([sys.executable, "-c", code, *names], check=True, timeout=120)
