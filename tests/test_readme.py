"""The README's Python examples run as written, and print what their comments say they print.

Convention (parsed here, used in the README's ``python`` blocks): a one-line ``print(...)`` statement may end with a
claim comment ``# prints CLAIM`` or ``# prints CLAIM — note``, where CLAIM is

- ``< BOUND``: the first number printed is, in absolute value, below ``BOUND`` (e.g. ``# prints < 1e-11``);
- ``TEXT ...``: the output starts with ``TEXT``;
- ``TEXT``: the output is ``TEXT``.

Outputs are compared with runs of whitespace (newlines included) collapsed to one space, so a printed array can be
written on one line. A comment on a ``print`` line that quotes a number but is not a claim fails
(``test_numeric_comments_on_prints_are_claims``), so an expectation cannot slip back in unchecked. A block whose first
line is ``# test_<name>.py`` is a pytest module: it is run with pytest (every test in it must pass).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
CLAIM = re.compile(r"^(?P<indent>\s*)(?P<stmt>print\(.*?)\s*#\s*prints\s+(?P<claim>.*?)(?:\s+—\s+.*)?$")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
PYTEST_BLOCK = re.compile(r"#\s*(test_\w+\.py)\s*$")
MARK = "@@readme-claim@@"


def claims(block: str) -> list[tuple[str, str]]:
    """``(statement, claim)`` for every claim comment of a block, in order."""
    return [(m["stmt"], m["claim"]) for line in block.splitlines() if (m := CLAIM.match(line))]


def instrument(block: str) -> str:
    """The block with a marker printed around each claimed statement, so that its output can be cut out."""
    out = []
    for line in block.splitlines():
        m = CLAIM.match(line)
        if m:
            ast.parse(m["stmt"])  # a claim must sit on a complete one-line statement
            out += [f"{m['indent']}print({MARK!r})", line, f"{m['indent']}print({MARK!r})"]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def check_claim(claim: str, printed: str, where: str) -> None:
    got = " ".join(printed.split())
    if claim.startswith("<"):
        bound = float(claim[1:].strip())
        number = NUMBER.search(got)
        assert number, f"{where}: claims a value < {bound:g} but printed no number: {got!r}"
        assert abs(float(number.group())) < bound, f"{where}: printed {got!r}, claimed < {bound:g}"
    elif claim.endswith(" ..."):
        prefix = claim[:-4]
        # a prefix ending in a word character ends at a word boundary ("200 ..." does not accept "2000")
        ok = got.startswith(prefix) and not (prefix[-1:].isalnum() and got[len(prefix) : len(prefix) + 1].isalnum())
        assert ok, f"{where}: printed {got!r}, claimed to start with {prefix!r}"
    else:
        assert got == claim, f"{where}: printed {got!r}, claimed {claim!r}"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_readme_has_examples_with_claims():
    assert len(BLOCKS) >= 5
    assert sum(len(claims(b)) for b in BLOCKS) >= 5, "the README's examples claim almost nothing they print"


def test_numeric_comments_on_prints_are_claims():
    loose = [
        line.strip()
        for b in BLOCKS
        for line in b.splitlines()
        if line.lstrip().startswith("print(") and "#" in line and not CLAIM.match(line)
        and re.search(r"[~<>]|\d", line.split("#", 1)[1])
    ]
    assert not loose, f"README print comments quoting numbers must be '# prints ...' claims: {loose}"


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_block(i, tmp_path):
    block = BLOCKS[i]
    first = block.splitlines()[0] if block.strip() else ""
    if m := PYTEST_BLOCK.match(first):
        # a test module: write the baselines it compares against, then run it for real
        (tmp_path / m[1]).write_text(block)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", m[1]]
        run([*base, "--rnnattn-update-baselines"], tmp_path)
        r = run(base, tmp_path)
        n = len(re.findall(r"^def test_", block, flags=re.M))
        assert r.returncode == 0 and f"{n} passed" in r.stdout, f"README block {i}:\n{block}\n---\n{r.stdout[-3000:]}"
        return
    script = tmp_path / f"block{i}.py"
    # Run from the repository root (the examples read shipped checkpoints); one thread as on CI.
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + instrument(block))
    r = run([sys.executable, str(script)], ROOT)
    assert r.returncode == 0, f"README block {i} failed:\n{block}\n--- stderr ---\n{r.stderr[-3000:]}"
    outputs = r.stdout.split(MARK + "\n")[1::2]  # what each claimed statement printed
    expected = claims(block)
    assert len(outputs) == len(expected), f"README block {i}: {len(expected)} claims, {len(outputs)} outputs"
    for (stmt, claim), printed in zip(expected, outputs, strict=True):
        check_claim(claim, printed, f"README block {i}, {stmt}")


@pytest.mark.parametrize(
    "claim,printed,ok",
    [
        ("< 1e-11", "tensor(6.4e-14, dtype=torch.float64)", True),
        ("< 1e-11", "tensor(6.4e-10, dtype=torch.float64)", False),
        ("< 1e-11", "no number", False),
        ("[7, 8, 9]", "[7, 8, 9]\n", True),
        ("[7, 8, 9]", "[7, 8, 10]\n", False),
        ("[[3] [7] [0]]", "[[3]\n [7]\n [0]]\n", True),
        ("equivalent: ...", "equivalent: every check below its threshold", True),
        ("equivalent: ...", "not equivalent: loss above threshold", False),
        ("200 ...", "200 0.13", True),
        ("200 ...", "2000 0.13", False),
    ],
)
def test_claim_checker(claim, printed, ok):
    # the checker itself can fail (a bound exceeded, a different text, a missing prefix)
    if ok:
        check_claim(claim, printed, "case")
    else:
        with pytest.raises(AssertionError):
            check_claim(claim, printed, "case")


def test_claim_comment_parsing():
    line = "print(token_answer(x, 3))          # prints [7, 8, 9] — the value stored under the query"
    assert claims(line) == [("print(token_answer(x, 3))", "[7, 8, 9]")]
    assert claims("print(x)  # a note") == []
