"""The README's Python examples run as written (the README must stay true for a newcomer)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_block_runs(i, tmp_path):
    script = tmp_path / f"block{i}.py"
    # Run from the repository root (the examples read shipped checkpoints); one thread as on CI.
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + BLOCKS[i])
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"README block {i} failed:\n{BLOCKS[i]}\n--- stderr ---\n{r.stderr[-3000:]}"
