import numpy as np
import pytest
import torch
from _constructions import random_lsa

from rnnattn import LSTM, GatedLinearRNN, GatedLinearRNNConfig, LSTMConfig, SequenceModel, SequenceModelConfig
from rnnattn.analysis import (
    AnalysisNotApplicable,
    instantaneous_polynomial,
    neuron_roles,
    one_step_gd_lsa,
    one_step_gd_polynomial,
    optimal_gd_eta,
    resolve_reference,
    role_counts,
)
from rnnattn.constructions import attention_to_gated_rnn
from rnnattn.tasks import InContextRegression


def test_roles_of_the_compact_construction():
    rnn = attention_to_gated_rnn(random_lsa(4), form="compact")
    df = neuron_roles(rnn)
    assert role_counts(df) == {"memory": 10, "forget": 4, "other": 0}
    mem, fgt = df[df.role == "memory"], df[df.role == "forget"]
    assert (mem.input_kind == "quadratic").all() and (fgt.input_kind == "linear").all()  # §3.1's reading
    assert not mem.reads_const_m.any() and not mem.reads_const_x.any() and fgt.reads_const_x.all()
    assert df.label.iloc[0] == "S[0,0]" and df.label.iloc[-1] == "p[3]"  # construction labels carried


def test_roles_dense_uses_eigenvalues():
    torch.manual_seed(0)
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 3, 2, 1, recurrence="dense")).double()
    with torch.no_grad():
        m.A.copy_(torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]))
    df = neuron_roles(m)
    np.testing.assert_allclose(df.lam, [1.0, 0.5, 0.0])
    assert list(df.role) == ["memory", "other", "forget"] and (df.input_kind == "n/a").all()
    assert "eigenmodes" in df.attrs["note"]


@pytest.mark.parametrize(
    "model",
    [
        LSTM(LSTMConfig(2, 3)),
        SequenceModel(
            SequenceModelConfig(2, 2, 4, layers=({"class": "LRU", "d_state": 4, "variant": "in_out"},))
        ),
    ],
)
def test_roles_not_applicable(model):
    with pytest.raises(
        AnalysisNotApplicable, match=f"neuron_roles: not applicable to {type(model).__name__}"
    ):
        neuron_roles(model)


def test_one_step_gd_reference_matches_task_and_table2():
    task = InContextRegression()
    eta = task.eta_star
    assert eta == pytest.approx(1 / 14.8) and optimal_gd_eta(12, 3) == pytest.approx(1 / 14.8)
    lsa = one_step_gd_lsa(eta, 3, 3)
    x = task.sample(16, torch.Generator().manual_seed(0)).x.double()
    with torch.no_grad():
        torch.testing.assert_close(lsa(x)[:, -1], task.gd_prediction(x)[:, -1], rtol=1e-12, atol=1e-12)
    p = one_step_gd_polynomial(eta, 3, 3)
    t = p.table.set_index("monomial")
    for j in (1, 2, 3):  # Table 2: the x_j^2 y_1 coefficients are eta* = 6.76e-2
        assert t.loc[f"x{j}^2*y1", "y1"] == pytest.approx(0.067568, abs=1e-6)
    others = np.delete(p.coefficients[0], [p.monomials.index(f"x{j}^2*y1") for j in (1, 2, 3)])
    assert np.all(others == 0)  # Table 2's residual norm is 0 for GD


def test_resolve_reference_from_checkpoint_metadata(tmp_path):
    import rnnattn

    lsa = random_lsa(2).float()
    student = GatedLinearRNN(GatedLinearRNNConfig(2, 4, 4, 2))
    path = rnnattn.save(student, tmp_path / "s.safetensors", extras={"teacher": lsa}, reference="teacher")
    ref = resolve_reference(path)
    assert ref.kind == "teacher" and next(ref.model.parameters()).dtype == torch.float64
    torch.testing.assert_close(ref.model.W_Q.float(), lsa.W_Q)
    # one_step_gd from the task metadata
    task = InContextRegression()
    icl = GatedLinearRNN(GatedLinearRNNConfig(6, 4, 4, 3))
    path = rnnattn.save(icl, tmp_path / "icl.safetensors", task=task.to_dict(), reference="one_step_gd")
    ref = resolve_reference(path)
    assert ref.kind == "one_step_gd" and ref.polynomial.variables == ("x1", "x2", "x3", "y1", "y2", "y3")
    # a construction finds its source
    rnn = attention_to_gated_rnn(random_lsa(2, seed=5), form="minimal")
    assert resolve_reference(rnn).kind == "construction"
    assert instantaneous_polynomial(rnn).coefficients.shape == (2, 15)
    with pytest.raises(ValueError, match="no reference found"):
        resolve_reference(student)
    with pytest.raises(ValueError, match="reference must be one of"):
        resolve_reference(student, "teachr")
