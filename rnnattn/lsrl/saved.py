"""Compiled LSRL checkpoints: a compiled program saved through :mod:`rnnattn.checkpoint` (safetensors).

The file holds the target model's float64 weights (a :class:`~rnnattn.lsrl.CompiledLSRL` for ``target="linear"``,
the converted Elman/GRU/LSTM/Hawk model otherwise) and, in its metadata under ``"lsrl_checkpoint"``::

    {"version": 1, "program_json": "<the program, rnnattn.lsrl.serialize format, as a string>",
     "mode": "exact" | "float64", "target": "linear" | ..., "max_len": int | null,
     "stats": {compiled sizes}, "program_stats": {DAG sizes}, "compile_seconds": float}

Exact-mode weights (``int`` / ``Fraction`` / sympy) have no tensor representation; the honest one is the program
itself: an exact checkpoint stores the program and is **recompiled exactly on load** (compiling takes 0.02-0.6 s for
the paper's programs), and its float tensors are checked against that recompilation (``target="linear"``), so a file
whose weights were edited is refused. Float64 checkpoints run the stored weights as they are (so weight noise or
edits are what you run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compiler import CompiledProgram, compile
from .program import Program
from .serialize import program_from_json, program_to_json

KEY = "lsrl_checkpoint"
VERSION = 1
TARGETS = ("linear", "elman", "gru", "lstm", "hawk")
MODES = ("exact", "float64")


@dataclass
class CompiledCheckpoint:
    """A loaded compiled checkpoint. ``model``: the stored (float64) target model; ``program``: the LSRL program;
    ``mode`` / ``target``: how it was compiled; ``info``: the metadata entry."""

    model: Any
    program: Program
    mode: str
    target: str
    info: dict[str, Any]
    path: Path | None = None

    def compiled(self, mode: str | None = None) -> CompiledProgram:
        """The program compiled again (``mode`` defaults to the checkpoint's)."""
        return compile(self.program, mode=mode or self.mode, name=self.program.name)


def build_target(cp: CompiledProgram, target: str, max_len: int | None = None) -> Any:
    """The torch model of ``cp`` for ``target`` (``max_len`` only for Hawk, its convolution length)."""
    from .convert import convert

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    module = cp.to_module()
    if target == "linear":
        return module
    if target == "hawk":
        return convert(module, "hawk", max_len=int(max_len or 256))
    return convert(module, target)


def save_compiled(
    program: Program,
    path: str | os.PathLike,
    mode: str = "float64",
    target: str = "linear",
    max_len: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Compiles ``program`` and saves it (see the module docstring); never replaces a file unless ``overwrite``."""
    from .. import checkpoint

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use --force to replace it)")
    cp = compile(program, mode=mode, name=program.name)
    model = build_target(cp, target, max_len)
    ps = program.stats()
    info = {
        "version": VERSION,
        "program_json": program_to_json(program),
        "mode": mode,
        "target": target,
        "max_len": int(max_len or 256) if target == "hawk" else None,
        "stats": dict(cp.stats().__dict__),
        "program_stats": {
            "nodes": ps.nodes,
            "state_dim": ps.state_dim,
            "dense_params": ps.dense_params,
            "nnz": ps.nnz,
            "by_kind": dict(ps.by_kind),
        },
        "compile_seconds": cp.compile_seconds,
        "name": program.name,
    }
    return checkpoint.save(model, path, overwrite=overwrite, **{KEY: info})


def is_compiled_checkpoint(metadata: dict[str, Any]) -> bool:
    return isinstance(metadata, dict) and KEY in metadata


def parse_info(metadata: dict[str, Any]) -> dict[str, Any]:
    """The validated ``lsrl_checkpoint`` entry of a checkpoint's metadata (``ValueError`` naming the field)."""
    info = metadata.get(KEY) if isinstance(metadata, dict) else None
    if not isinstance(info, dict):
        raise ValueError("not a compiled LSRL checkpoint (no 'lsrl_checkpoint' metadata)")
    if info.get("version") != VERSION:
        raise ValueError(f"compiled LSRL checkpoint version {str(info.get('version'))[:20]!r} is not {VERSION}")
    if info.get("mode") not in MODES or info.get("target") not in TARGETS:
        raise ValueError("compiled LSRL checkpoint: 'mode' or 'target' is not one rnnattn knows")
    if not isinstance(info.get("program_json"), str):
        raise ValueError("compiled LSRL checkpoint: 'program_json' must be a string")
    return info


def load_compiled(path: str | os.PathLike) -> CompiledCheckpoint:
    """Loads and validates a compiled checkpoint; exact ones are recompiled and checked against their tensors."""
    from ..checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    info = parse_info(ck.metadata)
    program = program_from_json(info["program_json"])
    cc = CompiledCheckpoint(ck.model, program, info["mode"], info["target"], info, Path(path))
    if cc.target == "linear":
        _check_weights(cc)
    return cc


def _check_weights(cc: CompiledCheckpoint) -> None:
    """Exact checkpoints: the stored tensors must be the float values of the recompiled program's weights."""
    if cc.mode != "exact":
        return
    import torch

    ref = cc.compiled("exact").to_module().state_dict()
    got = cc.model.state_dict()
    if set(ref) != set(got) or any(
        ref[k].shape != got[k].shape or not torch.equal(ref[k], got[k].double()) for k in ref
    ):
        raise ValueError("compiled LSRL checkpoint: the stored weights differ from the program's exact compilation")


def summary(metadata: dict[str, Any]) -> dict[str, Any]:
    """What ``rnnattn info`` shows for a compiled checkpoint: program, mode, target and sizes (DAG and compiled)."""
    info = parse_info(metadata)
    st, ps = info.get("stats") or {}, info.get("program_stats") or {}
    return {
        "program": str(info.get("name", "")),
        "mode": info["mode"],
        "target": info["target"],
        "program_nodes": ps.get("nodes"),
        "program_nodes_by_kind": ps.get("by_kind"),
        "sizes": f"state {st.get('state_dim')}, relu {st.get('relu_width')}, mul {st.get('mul_width')}, "
        f"max width {st.get('max_width')}, {st.get('stages')} stages, {st.get('dense_params')} dense params, "
        f"{st.get('nnz')} non-zeros",
        "stats": {
            k: st.get(k)
            for k in ("stages", "kinds", "state_dim", "relu_width", "mul_width", "max_width", "dense_params", "nnz")
        },
        "compile_seconds": info.get("compile_seconds"),
        "exact_weights": "recompiled from the stored program on load" if info["mode"] == "exact" else "float64",
    }
