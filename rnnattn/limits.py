"""Resource bounds: the most work any input file or option may cost rnnattn, in one place.

Every reader checks its input against these *before* doing work proportional to what the input claims (a
header's length, a grid's size, a dimension in metadata), so a small hostile file costs a bounded amount of time
and memory and is refused with a one-line :class:`ResourceLimitError` naming the limit. README "Guarantees"
states them. This module is at the bottom of the import graph (standard library only): everything may use it.
"""

from __future__ import annotations

import math
from typing import Any

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# -- safetensors files (checkpoints, trainer resume state) --------------------------------------------------------
MAX_HEADER_BYTES = 4 * MiB  # JSON header; rnnattn's own are ~2-3 KiB
MAX_FILE_BYTES = 4 * GiB  # whole file; checked against the size the header declares before reading any data
MAX_TENSORS = 4096  # entries in one file
MAX_TENSOR_RANK = 8  # dims per tensor entry (zoo tensors have <= 3)
MAX_CONFIG_INT = 1 << 24  # any integer in a model config (16.7M)
MAX_CONFIG_LIST = 1024  # any list in a model config: layers of a stack, stages of a compiled LSRL program
MAX_PARAMETERS = 1 << 28  # values in all models of one file (1 GiB in float32)
MAX_BUILD_MODULES = 20_000  # modules + parameters + buffers registered while building a file's (meta) models
MAX_METADATA_DEPTH = 32  # nesting of the JSON in a file's rnnattn metadata (config, metadata, extras)
MAX_METADATA_KEYS = 10_000  # mapping keys in it, counted over every level (what a report renders)
MAX_METADATA_ITEMS = 1_000_000  # list items in it, counted over every level (numeric payloads, e.g. a source's weights)

# -- text files ---------------------------------------------------------------------------------------------------
MAX_SPEC_BYTES = 1 * MiB  # sweep specification (JSON)
MAX_RESULTS_BYTES = 256 * MiB  # a sweep's results.jsonl
MAX_LOG_BYTES = 64 * MiB  # a training log.csv
MAX_LOG_ROWS = 1_000_000  # rows of a training log.csv
MAX_LOG_COLUMNS = 64  # columns of a training log.csv read by the report

# -- sweeps -------------------------------------------------------------------------------------------------------
MAX_SWEEP_RUNS = 100_000  # grid points x seeds, counted before the grid is expanded
MAX_SWEEP_NAME = 100  # characters of a sweep name (it is a folder name)
MAX_SWEEP_PARAM_BYTES = 256 * MiB  # runs x JSON size of one run's parameters (each run's id hashes them)
MAX_WORKERS_PER_CORE = 4  # local worker processes per CPU core (each imports torch)

# -- LSRL programs ------------------------------------------------------------------------------------------------
MAX_LSRL_DIM = 1 << 16  # dimension of any LSRL node (the paper's programs use <= 20; compiled stages are wider)
MAX_LSRL_NODES = 100_000  # nodes in one program read from JSON (the token program n=10 has ~2,000)
MAX_LSRL_PROGRAM_BYTES = 64 * MiB  # a program JSON file

# -- analyses -----------------------------------------------------------------------------------------------------
MAX_ANALYSIS_BYTES = 1 * GiB  # estimated working memory of one polynomial extraction/fit, or of the probe inputs
MAX_TRAIN_BYTES = 8 * GiB  # estimated working memory of one training run (rnnattn.training.budget)
MAX_ANALYSIS_WIDTH = 16_384  # widest dimension of a model the analyses run (256 probe sequences x 32 steps fit 1 GiB)


class ResourceLimitError(ValueError):
    """An input asks for more than a limit of this module; ``str(err)`` names the limit."""


def _limit(what: str, value: int | float, limit: int | float, name: str) -> ResourceLimitError:
    return ResourceLimitError(f"{what} is {value:,}, above the limit of {limit:,} (rnnattn.limits.{name}); refusing")


def check_at_most(what: str, value: int | float, name: str) -> None:
    """Raise :class:`ResourceLimitError` if ``value`` exceeds the limit ``rnnattn.limits.<name>``."""
    limit = globals()[name]
    if value > limit:
        raise _limit(what, value, limit, name)


def check_json_shape(obj: Any, what: str = "metadata") -> None:
    """Refuse JSON deeper than ``MAX_METADATA_DEPTH``, with more than ``MAX_METADATA_KEYS`` mapping keys or
    ``MAX_METADATA_ITEMS`` list items (over all levels), or with strings holding lone surrogates (``"\\ud800"``
    decodes to text no file or terminal can encode). Iterative: never a RecursionError; stops at the first excess."""
    items = keys = 0
    stack: list[tuple[Any, int, str]] = [(obj, 0, what)]
    while stack:
        x, depth, where = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise _limit(f"nesting depth of {what}", depth, MAX_METADATA_DEPTH, "MAX_METADATA_DEPTH")
        if isinstance(x, str):
            _check_text(x, where)
        elif isinstance(x, dict):
            keys += len(x)
            if keys > MAX_METADATA_KEYS:
                raise _limit(f"number of keys in {what}", keys, MAX_METADATA_KEYS, "MAX_METADATA_KEYS")
            for k, v in x.items():
                _check_text(str(k), where)
                stack.append((v, depth + 1, f"{where}.{str(k)[:40]}"))
        elif isinstance(x, list | tuple):
            items += len(x)
            if items > MAX_METADATA_ITEMS:
                raise _limit(f"number of list items in {what}", items, MAX_METADATA_ITEMS, "MAX_METADATA_ITEMS")
            # numbers need no visit (lists of weights are the bulk); a list's elements share its path in messages
            stack.extend((v, depth + 1, f"{where}[]") for v in x if isinstance(v, str | dict | list | tuple))


def _check_text(s: str, where: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where} holds invalid Unicode (a lone surrogate)") from None


# -- polynomial extraction ----------------------------------------------------------------------------------------
def polynomial_bytes(n_vars: int, degree: int, n_out: int, n_points: int | None = None) -> int:
    """Estimated peak bytes of extracting the degree-``degree`` instantaneous polynomial of a model with ``n_vars``
    inputs and ``n_out`` outputs (rnnattn.analysis.polynomial; §3.1).

    Exact route: index tables over every index tuple of the ``p = n_vars + 1`` extended input, ``P^2`` pairs of
    quadratic monomials (``P = p(p+1)/2``) for the quartic, ``p^3`` triples for the cubic, each with ``n_vars``
    exponent counts, plus ``n_out`` coefficient tensors of that size. Least-squares route (``n_points`` given):
    the ``n_points x C(n_vars + K, K)`` design matrix, about three times (features, lstsq workspace).
    """
    n_mono = math.comb(n_vars + degree, degree)
    if n_points is not None:
        return 8 * 3 * max(n_points, 1) * (n_mono + n_out)
    p = n_vars + 1
    tuples = (p * (p + 1) // 2) ** 2 if degree >= 4 else p**degree
    return 8 * (tuples * (n_vars + 6 + n_out) + n_mono * n_out)


def check_polynomial(
    n_vars: int, degree: int, n_out: int, what: str = "polynomial extraction", n_points: int | None = None
) -> None:
    """Refuse a polynomial extraction whose estimated memory (:func:`polynomial_bytes`) exceeds
    ``MAX_ANALYSIS_BYTES``, before anything is allocated."""
    need = polynomial_bytes(int(n_vars), int(degree), int(n_out), n_points)
    _check_analysis_bytes(f"{what} for d_input={n_vars}, d_output={n_out} (degree {degree}) needs", need)


def _check_analysis_bytes(subject: str, need: int) -> None:
    """Refuse ``need`` bytes above ``MAX_ANALYSIS_BYTES``; ``subject`` ends in its verb ("... needs")."""
    if need > MAX_ANALYSIS_BYTES:
        raise ResourceLimitError(
            f"{subject} about {need / GiB:,.1f} GiB, above the budget of {MAX_ANALYSIS_BYTES / GiB:g} GiB "
            "(rnnattn.limits.MAX_ANALYSIS_BYTES); refusing"
        )


# -- probes and forward passes ------------------------------------------------------------------------------------
def check_probe_inputs(n_sequences: int, seq_len: int, d: int, what: str = "probe inputs") -> None:
    """Refuse probe inputs of ``n_sequences x seq_len x d`` float64 values (x 4 for the model's intermediates) above
    ``MAX_ANALYSIS_BYTES``: a task in the metadata may claim ``seq_len`` or ``n_context`` 10^9."""
    need = 8 * 4 * int(n_sequences) * int(seq_len) * max(int(d), 1)
    _check_analysis_bytes(f"{what} of {n_sequences:,} sequences x {seq_len:,} steps x {d:,} features need", need)


def check_analysis_width(model: Any) -> None:
    """Refuse to analyse a model any of whose parameters has a dimension above ``MAX_ANALYSIS_WIDTH`` (its hidden
    states on the probe inputs would not fit the budget), before any analysis runs."""
    widest = max((max(p.shape, default=0) for p in model.parameters()), default=0)
    if widest > MAX_ANALYSIS_WIDTH:
        raise _limit("the widest dimension of the model to analyse", widest, MAX_ANALYSIS_WIDTH, "MAX_ANALYSIS_WIDTH")
