import matplotlib

matplotlib.use("Agg")

from rnnattn.lsrl import compile, draw_compiled, draw_program, stage_weights, token_program  # noqa: E402


def test_pictures_and_weights():
    p = token_program(2, "multiplicative_optimized")
    cp = compile(p)
    fig = draw_program(p)
    assert fig.axes
    fig2 = draw_compiled(cp)
    assert len(fig2.axes) == 1 + len(cp.stages)
    w = stage_weights(cp)
    assert len(w) == len(cp.stages)
    assert w[0]["W"].shape == (cp.stages[0].in_width, cp.input_dim)
    assert len(w[0]["table"]) == cp.stages[0].W.nnz
    assert all(len(s["labels"]) == st.width for s, st in zip(w, cp.stages, strict=False))
    import matplotlib.pyplot as plt

    plt.close("all")
