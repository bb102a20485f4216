"""The gated RNN training step (Eq. 2, diagonal; loss on every step; AdamW) in JAX, for comparison with the field's
usual framework. Optional: ``pip install 'rnnattn[bench]'`` (CPU jax); the benchmarks skip it when jax is missing.

Same model, loss and optimiser as ``rnnattn.training`` (``lam = exp(-exp(nu))``; ``L = 0.5 mean (ŷ - y)^2``;
AdamW with decoupled decay, no decay on ``nu``), one ``jax.jit``-compiled function per step; the recurrence is
``jax.lax.scan`` over time (``scan="sequential"``) or ``jax.lax.associative_scan`` (``scan="associative"``).
Import this module only after :func:`single_thread_flags` (XLA reads its flags at import).
"""

from __future__ import annotations

import os


def single_thread_flags() -> int | None:
    """Ask XLA's CPU backend for one intra-op thread, and pin this process (and every thread it starts later) to one
    core: measured on the idle machine, XLA still ran a second busy thread with the flag alone (11.6 CPU ms per
    6.9 wall ms). Must run before jax is imported. Returns the core pinned to (None where affinity is unsupported)."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def make_step(d: int, N: int, M: int, d_out: int, scan: str = "sequential", lr: float = 1e-3, wd: float = 1e-4):
    """Returns ``(step, state)``: ``state = step(state, x [B, T, d], y [B, T, d_out])`` runs one AdamW step."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {
        "W_in": jax.random.normal(k1, (2, N, d + 1)) / jnp.sqrt(d + 1.0),
        "nu": jnp.log(-jnp.log(jax.random.uniform(k2, (N,), minval=0.1, maxval=0.99))),
        "W_out": jax.random.normal(k3, (2, M, N)) / jnp.sqrt(1.0 * N),
        "D": jax.random.normal(k4, (d_out, M)) / jnp.sqrt(1.0 * M),
    }

    def forward(p, x):
        z = jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)
        u = (z @ p["W_in"][0].T) * (z @ p["W_in"][1].T)  # [B, T, N]
        lam = jnp.exp(-jnp.exp(p["nu"]))
        if scan == "sequential":

            def cell(h, u_t):
                h = lam * h + u_t
                return h, h

            _, h = jax.lax.scan(cell, jnp.zeros((x.shape[0], N), x.dtype), jnp.swapaxes(u, 0, 1))
            h = jnp.swapaxes(h, 0, 1)
        else:
            a = jnp.broadcast_to(lam, u.shape)

            def combine(left, right):
                return right[0] * left[0], right[0] * left[1] + right[1]

            _, h = jax.lax.associative_scan(combine, (a, u), axis=1)
        g = (h @ p["W_out"][0].T) * (h @ p["W_out"][1].T)
        return g @ p["D"].T

    def loss_fn(p, x, y):
        return 0.5 * jnp.mean((forward(p, x) - y) ** 2)

    decay = {"W_in": wd, "nu": 0.0, "W_out": wd, "D": wd}

    @jax.jit
    def step(state, x, y):
        p, m, v, t = state
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        t = t + 1
        m = jax.tree_util.tree_map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
        bc1, bc2 = 1 - 0.9**t, 1 - 0.999**t
        p = {
            k: p[k] * (1 - lr * decay[k]) - lr * (m[k] / bc1) / (jnp.sqrt(v[k] / bc2) + 1e-8) for k in p
        }
        return (p, m, v, t), loss

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return step, (params, zeros, zeros, jnp.asarray(0.0))


def block_until_ready(out) -> None:
    import jax

    jax.block_until_ready(out)
