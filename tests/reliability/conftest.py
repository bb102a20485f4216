"""Reliability suite: report how many inputs were tried, processes killed and files lost (issue 9's counts).

Set ``RNNATTN_RELIABILITY_COUNTS=path.json`` to also write the counts to a file.
"""

import json
import os

from _reliability_tools import COUNTS


def pytest_terminal_summary(terminalreporter):
    if not COUNTS:
        return
    terminalreporter.section("rnnattn reliability counts")
    for k in sorted(COUNTS):
        terminalreporter.write_line(f"{k}: {COUNTS[k]}")
    terminalreporter.write_line(f"inputs tried (total): {sum(v for k, v in COUNTS.items() if k.startswith('inputs:'))}")
    out = os.environ.get("RNNATTN_RELIABILITY_COUNTS")
    if out:
        with open(out, "w") as f:
            json.dump(dict(COUNTS), f, indent=2, sort_keys=True)
