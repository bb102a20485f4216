"""The reports of the shipped checkpoints: ``reports/<name>/report.{html,pdf}`` exist, are complete and
belong to the current checkpoint file. Regenerate them with ``rnnattn report --all-shipped -o reports --force``."""

import hashlib
import io
import re
from pathlib import Path

import pypdf
import pytest

from rnnattn.cli.cmd_report import shipped_checkpoints
from rnnattn.report.build import SECTION_KEYS

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "regenerate with: rnnattn report --all-shipped -o reports --force"
SHIPPED = shipped_checkpoints(ROOT / "checkpoints")


def _check(html: str, pdf: bytes, ckpt: Path) -> None:
    ids = re.findall(r'<section id="([a-z_]+)"', html)
    assert ids == list(SECTION_KEYS), f"{ckpt.name}: sections {ids}; {REGENERATE}"
    digest = re.search(r'<meta name="rnnattn-checkpoint-sha256" content="([0-9a-f]{64})">', html)
    assert digest and digest.group(1) == hashlib.sha256(ckpt.read_bytes()).hexdigest(), (
        f"reports/{ckpt.stem} is stale (made from another version of {ckpt.name}); {REGENERATE}"
    )
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) >= 1 + len(SECTION_KEYS)
    for title in ("Model and training", "Instantaneous polynomial", "Verdict", ckpt.stem):
        assert title in text, title


@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_reports_are_complete_and_current(ckpt):
    html, pdf = (ROOT / "reports" / ckpt.stem / f"report.{f}" for f in ("html", "pdf"))
    assert html.is_file() and pdf.is_file(), f"missing reports/{ckpt.stem}/report.html|pdf; {REGENERATE}"
    _check(html.read_text(), pdf.read_bytes(), ckpt)


@pytest.mark.slow
@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_report_command_on_shipped_checkpoint(ckpt, tmp_path):
    from rnnattn.cli.main import main

    assert main(["report", str(ckpt), "-o", str(tmp_path)]) == 0
    out = tmp_path / ckpt.stem
    _check((out / "report.html").read_text(), (out / "report.pdf").read_bytes(), ckpt)
