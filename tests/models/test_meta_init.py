"""Loading a checkpoint builds the model on the meta device first; that must not pull in torch._dynamo (which
meta-tensor arithmetic imports, costing seconds per process), so initialisers are skipped on meta."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_loading_shipped_checkpoints_does_not_import_dynamo():
    code = (
        "import sys, glob, rnnattn\n"
        "for f in sorted(glob.glob('checkpoints/*.safetensors')):\n"
        "    rnnattn.load_checkpoint(f)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_meta_built_models_have_the_real_shapes():
    import torch

    from rnnattn.models import (
        LRU,
        GatedLinearRNN,
        GatedLinearRNNConfig,
        LinearSelfAttention,
        LinearSelfAttentionConfig,
        LRUConfig,
    )

    for cls, cfg in [
        (GatedLinearRNN, GatedLinearRNNConfig(3, 5, 7, 2, recurrence="dense")),
        (GatedLinearRNN, GatedLinearRNNConfig(3, 5, 7, 2)),
        (LinearSelfAttention, LinearSelfAttentionConfig(4, n_heads=2, d_output=3)),
        (LRU, LRUConfig(4, 6, "in_skip", d_output=5)),
    ]:
        with torch.device("meta"):
            meta = cls(cfg)
        real = cls(cfg)
        assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}
        assert all(torch.isfinite(v).all() for v in real.state_dict().values())
