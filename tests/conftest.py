import os

import pytest
import torch

# One thread per process: on the 2-core CI machine OpenMP spinning across threads was 10-50x slower (our measurement).
torch.set_num_threads(int(os.environ.get("RNNATTN_TEST_THREADS", "1")))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)
