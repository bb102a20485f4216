"""``rnnattn report`` on a compiled LSRL checkpoint (issue 15): its own report with graph, weights, sizes against
the reference, compiled-vs-interpreter agreement and the error under weight noise."""

import html
import re

import pytest

from rnnattn.lsrl import continuous_program
from rnnattn.lsrl.saved import save_compiled
from rnnattn.report.lsrl import build_lsrl_document, is_compiled_lsrl, write_lsrl_report


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("lsrl") / "cont.safetensors"
    return save_compiled(continuous_program(1, 1, "multiplicative"), path, mode="exact")


def test_document_sections(ckpt):
    rep = build_lsrl_document(ckpt)
    assert [s.key for s in rep.sections] == ["summary", "graph", "weights", "sizes", "agreement", "noise"]
    sizes = rep.section("sizes").reading
    assert "vs the reference's 31" in sizes  # Listing 1, multiplicative, d = 1 (reference implementation)
    agreement = rep.section("agreement").reading
    assert "identical on every prompt" in agreement and "disagreement 0" in agreement
    noise = rep.section("noise").blocks[0].df
    assert list(noise.sigma) == [0.0, 1e-9, 1e-7, 1e-5, 1e-3] and noise.max_error.iloc[0] == 0


def test_written_via_cli_dispatch(ckpt, tmp_path, capsys):
    from rnnattn.cli.main import main

    assert is_compiled_lsrl(ckpt) and not is_compiled_lsrl(tmp_path / "missing.safetensors")
    assert main(["report", str(ckpt), "-o", str(tmp_path), "--format", "html"]) == 0
    page = (tmp_path / "cont" / "report.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "Compiled LSRL program" in text and "Output error under weight noise" in text
    assert main(["report", str(ckpt), "-o", str(tmp_path), "--format", "html"]) == 2  # no overwrite
    assert "exists" in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        write_lsrl_report(ckpt, tmp_path / "cont", ["html"])
