"""Hand-written forward/backward for K gated linear RNNs (Eq. 2, diagonal) trained at once, plus a flat AdamW.

Why: on a 1-thread CPU a training step of the paper's student (N = M = 100, 2048 tokens, App. B.1) spends most of
its time in autograd bookkeeping, allocation and strided copies, not in the ~0.26 GFLOP of useful work. Here the
backward pass is written out and the step runs on buffers kept across steps (:class:`Workspace`: no allocation, so
no page faults once warm). Activations are *token-major* (``[K, rows, features]``, row ``c = t*B + b``), so
each gating is ONE matmul with the two branches stacked (``W_in [2N, d+1]``, ``W_out [2M, N]``) and its halves are
column blocks; every thin matmul (inner or outer size ``d+1`` or ``d_out``) runs in the orientation MKL does fastest
(measured at N = M = 100, 2048 rows: 0.58 -> 0.35 ms per step against the feature-major layout), and the prepared
data ``z`` is used as it is (no transposed copy); the weight gradients of both branches are also
one matmul each. The readout is evaluated only where the task has loss (ICL: the query step only), and all
parameters of all models live in one flat ``[K, P]`` buffer so AdamW is a few vector ops. K models (seeds, or sizes
padded to the same shapes) share every kernel through batched matmuls.

Layouts: prepared data ``z [K, T*B, d+1]`` (time-major rows ``t*B + b``, constant 1 appended), targets
``[K, R, d_out]`` with ``R = T*B`` (loss on every step) or ``R = B`` (loss on the last step only).

Equations (per model, ``lam = exp(-exp(nu))``; ``W^in = [W_m^in; W_x^in]``, ``W^out = [W_m^out; W_x^out]``):
    [a_m, a_x] = z W^in^T,  u = a_m * a_x,  h_t = lam * h_{t-1} + u_t,
    [b_m, b_x] = h W^out^T,  g = b_m * b_x,  ŷ = g D^T,  L = 0.5 mean (ŷ - y)^2.
Backward: gŷ = (ŷ - y)/(R d_out); gD = gŷ^T g; gg = gŷ D; gb = [gg*b_x, gg*b_m]; gW^out = gb^T h;
gh = gb W^out; gu_t = gh_t + lam * gu_{t+1}; glam = sum_t gu_t h_{t-1}; gnu = -glam exp(nu) lam;
ga = [gu*a_x, gu*a_m]; gW^in = ga^T z.
"""

from __future__ import annotations

import math

import torch

from rnnattn.models.gated_rnn import GatedLinearRNN

PARAM_NAMES = ("W_in", "nu", "W_out", "D")
PLAIN_SCAN_MAX_T = 64


def supports(model: object) -> bool:
    """True for a diagonal :class:`GatedLinearRNN` (the model this engine implements)."""
    return isinstance(model, GatedLinearRNN) and model.config.recurrence == "diagonal"


class Workspace:
    """Every intermediate of one forward/backward for ``K`` models, ``C = T*B`` rows and ``R`` loss rows,
    allocated once and overwritten by each step (shapes in the class docstring of :class:`StackedGatedRNN`)."""

    def __init__(self, net: StackedGatedRNN, C: int, R: int, T: int, last_only: bool, grad: bool) -> None:
        K, N, M, O, d1 = net.K, net.N, net.M, net.d_out, net.d_in
        new = lambda *s: torch.empty(*s, device=net.device, dtype=net.dtype)  # noqa: E731
        B = C // T
        self.key = (C, R, T, last_only)
        self.a = new(K, C, 2 * N)  # [a_m, a_x]
        self.h = new(K, C, N)  # u, then h in place (the scan)
        self.hp = new(K, R, N)  # h where the readout is evaluated (h itself when R = C)
        self.b, self.g = new(K, R, 2 * M), new(K, R, M)
        self.yhat, self.err = new(K, R, O), new(K, R, O)
        self.lam = self.P = None  # lam [K, N]; last-only: lam^(T-1-t) [K, T, N]
        # last-only exponents T-1-t of lam, and those of its derivative (max(T-2-t, 0)): [T, 1]
        self.e = torch.arange(T - 1, -1, -1, device=net.device, dtype=net.dtype)[:, None]
        self.e_deriv = (self.e - 1).clamp(min=0)
        self.tmp = new(K, T, B, N) if last_only else None  # last-only products summed over t (or b)
        if not last_only:
            self.hp = self.h
            self.scan_h = Scan(self.h.view(K, T, B, N), reverse=False)
        self.grad = grad
        if grad:  # the backward pass's buffers (evaluation on large sets skips them)
            self.gb, self.gg = new(K, R, 2 * M), new(K, R, M)
            self.gu = new(K, C, N)  # gh, then gu in place (the reverse scan)
            self.ga = new(K, C, 2 * N)
            self.gW_inT, self.gW_out, self.gD = new(K, d1, 2 * N), new(K, 2 * M, N), new(K, O, M)
            self.ghp = new(K, R, N) if last_only else None
            self.gprod = None if last_only else new(K, C - B, N)
            if not last_only:
                self.scan_gu = Scan(self.gu.view(K, T, B, N), reverse=True)
        self._views(N, M, C, B, last_only, grad)

    def _views(self, N: int, M: int, C: int, B: int, last_only: bool, grad: bool) -> None:
        """Slices and transposes of the buffers, built once (a view costs ~1-2 us to create, per step)."""
        self.am, self.ax, self.bm, self.bx = self.a[..., :N], self.a[..., N:], self.b[..., :M], self.b[..., M:]
        if grad:
            self.gbm, self.gbx = self.gb[..., :M], self.gb[..., M:]
            self.gam, self.gax = self.ga[..., :N], self.ga[..., N:]
            self.gbT, self.gW_in = self.gb.transpose(1, 2), self.gW_inT.transpose(1, 2)
            if not last_only:  # glam = sum_{t >= 1} gu_t h_{t-1}: rows shifted by one time step (B rows)
                self.gu_next, self.h_prev = self.gu[:, B:], self.h[:, : C - B]


class StackedGatedRNN:
    """K diagonal gated RNNs with identical configs, parameters stacked in one flat ``[K, P]`` buffer.

    Workspace shapes (token-major, ``C = T*B`` rows ``t*B + b``, ``R`` = C or B loss rows):
    ``a [K, C, 2N]``, ``h [K, C, N]``, ``b [K, R, 2M]``, ``g [K, R, M]``, ``ŷ [K, R, d_out]``.

    Args:
        models: the models (their weights are copied in; :meth:`write_back` copies them out).
        device, dtype: where and in what precision to compute (default: the first model's).
    Attributes:
        flat, grad: ``[K, P]`` parameters and gradients; ``params[name]`` are ``[K, ...]`` views into ``flat``.
    """

    def __init__(
        self,
        models: list[GatedLinearRNN],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not models or not all(supports(m) for m in models):
            raise ValueError("StackedGatedRNN: needs one or more diagonal GatedLinearRNN models")
        cfg = models[0].config
        if any(m.config != cfg for m in models):
            raise ValueError("StackedGatedRNN: all models must share one config")
        self.config = cfg
        self.K = len(models)
        self.N, self.M, self.d_out = cfg.n_hidden, cfg.n_gating, cfg.d_output
        self.d_in = cfg.d_input + int(cfg.append_one)
        ref = models[0].W_in
        self.device = torch.device(device) if device is not None else ref.device
        self.dtype = dtype or ref.dtype
        self.shapes = {n: tuple(getattr(models[0], n).shape) for n in PARAM_NAMES}
        self.sizes = {n: math.prod(s) for n, s in self.shapes.items()}
        self.P = sum(self.sizes.values())
        self.flat = torch.empty(self.K, self.P, device=self.device, dtype=self.dtype)
        self.grad = torch.zeros_like(self.flat)
        self.params = self._views(self.flat)
        self.grads = self._views(self.grad)
        self._ws: Workspace | None = None  # the training step's buffers, reused while its shape stays the same
        K, N, M, d1 = self.K, self.N, self.M, self.d_in
        self.W_in_f, self.W_out_f = self.params["W_in"].view(K, 2 * N, d1), self.params["W_out"].view(K, 2 * M, N)
        self.W_inT, self.W_outT = self.W_in_f.transpose(1, 2), self.W_out_f.transpose(1, 2)
        self.DT = self.params["D"].transpose(1, 2)
        self.gW_in_f, self.gW_out_f = self.grads["W_in"].view(K, 2 * N, d1), self.grads["W_out"].view(K, 2 * M, N)
        self.load_from(models)

    def _views(self, buf: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: buf[:, cols].view(self.K, *self.shapes[n]) for n, cols in self.slices().items()}

    def slices(self) -> dict[str, slice]:
        """Column range of each parameter inside ``flat``."""
        out, o = {}, 0
        for n in PARAM_NAMES:
            out[n] = slice(o, o + self.sizes[n])
            o += self.sizes[n]
        return out

    @torch.no_grad()
    def load_from(self, models: list[GatedLinearRNN]) -> None:
        for k, m in enumerate(models):
            for n in PARAM_NAMES:
                self.params[n][k].copy_(getattr(m, n).detach())

    @torch.no_grad()
    def write_back(self, models: list[GatedLinearRNN]) -> None:
        for k, m in enumerate(models):
            for n in PARAM_NAMES:
                getattr(m, n).copy_(self.params[n][k])

    # -- data layout ---------------------------------------------------------------------------------------------
    def prepare(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        last_only: bool = False,
        out: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x [K, B, T, d]`` (and ``y [K, B, T, d_out]``) -> ``z [K, T*B, d(+1)]`` and targets ``[K, R, d_out]``.

        ``out``: buffers of those shapes to write into (views of a larger block are fine, e.g. one model's column
        of ``[S, K, ...]``): each input is copied once, transposed, straight into its final place."""
        K, B, T, d = x.shape
        z, t = out if out is not None else (None, None)
        if z is None:
            z = torch.empty(K, T * B, self.d_in, device=self.device, dtype=self.dtype)
        z4 = z.view(K, T, B, self.d_in)
        z4[..., :d].copy_(x.transpose(1, 2))
        if self.config.append_one:
            z4[..., d].fill_(1.0)
        if y is None:
            return z, None
        src = y[:, :, -1] if last_only else y.transpose(1, 2)  # [K, B, d_out] or [K, T, B, d_out]
        if t is None:
            t = torch.empty(K, B if last_only else T * B, y.shape[-1], device=self.device, dtype=self.dtype)
        t.view(src.shape).copy_(src)
        return z, t

    def _workspace(self, z: torch.Tensor, T: int, last_only: bool, keep: bool) -> Workspace:
        C = z.shape[1]
        key = (C, C // T if last_only else C, T, last_only)
        if self._ws is not None and self._ws.key == key and (self._ws.grad or not keep):
            return self._ws
        ws = Workspace(self, key[0], key[1], T, last_only, grad=keep)
        if keep:
            self._ws = ws
        return ws

    # -- compute ------------------------------------------------------------------------------------------------
    def _forward(self, z: torch.Tensor, T: int, last_only: bool, keep: bool = False) -> Workspace:
        """Fill ``ws.a, ws.h, ws.hp, ws.b, ws.g, ws.yhat`` for prepared inputs ``z [K, T*B, d+1]``."""
        K, N = self.K, self.N
        ws = self._workspace(z, T, last_only, keep)
        B = z.shape[1] // T
        ws.exp_nu = torch.exp(self.params["nu"])
        lam = torch.exp(-ws.exp_nu)  # [K, N]
        torch.bmm(z, self.W_inT, out=ws.a)
        torch.mul(ws.am, ws.ax, out=ws.h)  # u
        if last_only:
            # h_T = sum_t lam^(T-1-t) u_t (no scan needed when only the last state is read)
            ws.P = torch.pow(lam[:, None, :], ws.e)  # [K, T, N]
            torch.mul(ws.h.view(K, T, B, N), ws.P[:, :, None, :], out=ws.tmp)
            torch.sum(ws.tmp, dim=1, out=ws.hp)
        else:
            ws.scan_h(lam)  # u -> h in place
        torch.bmm(ws.hp, self.W_outT, out=ws.b)
        torch.mul(ws.bm, ws.bx, out=ws.g)
        torch.bmm(ws.g, self.DT, out=ws.yhat)
        ws.lam = lam
        return ws

    @torch.no_grad()
    def predict(self, z: torch.Tensor, T: int, last_only: bool = False) -> torch.Tensor:
        """Outputs ``[K, R, d_out]`` (rows time-major, like the targets) for prepared inputs ``z [K, T*B, ·]``."""
        return self._forward(z, T, last_only).yhat.clone()

    @torch.no_grad()
    def loss(self, z: torch.Tensor, target: torch.Tensor, T: int, last_only: bool = False) -> torch.Tensor:
        """Per-model loss ``[K]``: 0.5 * mean squared error over rows and output coordinates."""
        ws = self._forward(z, T, last_only)
        torch.sub(ws.yhat, target, out=ws.err)
        return 0.5 * ws.err.pow(2).mean(dim=(1, 2))

    @torch.no_grad()
    def loss_and_grad(
        self, z: torch.Tensor, target: torch.Tensor, T: int, last_only: bool = False
    ) -> torch.Tensor:
        """Per-model losses ``[K]``; gradients of each model's own loss are written into ``self.grad``."""
        K = self.K
        ws = self._forward(z, T, last_only, keep=True)
        err = torch.sub(ws.yhat, target, out=ws.err)
        R = err.shape[1]
        losses = 0.5 * torch.linalg.vector_norm(err.view(K, -1), dim=1).square() / (R * self.d_out)
        gy = err.mul_(1.0 / (R * self.d_out))
        G = self.grads
        _bmm_into(G["D"], gy.transpose(1, 2), ws.g, ws.gD)
        torch.bmm(gy, self.params["D"], out=ws.gg)
        torch.mul(ws.gg, ws.bx, out=ws.gbm)
        torch.mul(ws.gg, ws.bm, out=ws.gbx)
        _bmm_into(self.gW_out_f, ws.gbT, ws.hp, ws.gW_out)
        gh = ws.ghp if last_only else ws.gu
        torch.bmm(ws.gb, self.W_out_f, out=gh)  # [K, R, N]
        glam = self._scan_backward(ws, gh, T, last_only)
        lam = ws.lam
        # d lam / d nu = -exp(nu) lam; define it as 0 where lam == 0 (nu = +inf would give inf * 0).
        dlam = torch.where(lam == 0, 0.0, ws.exp_nu.mul_(lam).neg_())
        torch.mul(glam, dlam, out=G["nu"])
        torch.mul(ws.gu, ws.ax, out=ws.gam)
        torch.mul(ws.gu, ws.am, out=ws.gax)
        # gW^in^T = z^T ga: the thin [d+1, 2N] output is ~6x faster this way round than ga^T z (measured).
        torch.bmm(z.transpose(1, 2), ws.ga, out=ws.gW_inT)
        self.gW_in_f.copy_(ws.gW_in)
        return losses

    def _scan_backward(self, ws: Workspace, gh: torch.Tensor, T: int, last_only: bool) -> torch.Tensor:
        """``ws.gu`` = dL/du from dL/dh (``gh``); returns ``glam [K, N]`` = dL/dlam."""
        K, N = self.K, self.N
        B = ws.gu.shape[1] // T
        lam = ws.lam
        if last_only:
            # gu_t = lam^(T-1-t) gh; glam = sum_t d(lam^(T-1-t))/dlam <gh, u_t>, with u_t = ws.h (never scanned).
            torch.mul(ws.P[:, :, None, :], gh[:, None], out=ws.gu.view(K, T, B, N))
            dP = ws.e * torch.pow(lam[:, None, :], ws.e_deriv)  # [K, T, N]
            torch.mul(ws.h.view(K, T, B, N), gh[:, None], out=ws.tmp)
            return (ws.tmp.sum(dim=2) * dP).sum(dim=1)
        ws.scan_gu(lam)  # gu_t = gh_t + lam gu_{t+1}, in place
        # glam = sum_{t >= 1, b} gu_t h_{t-1}: a product into a kept buffer, then a column sum
        return torch.mul(ws.gu_next, ws.h_prev, out=ws.gprod).sum(dim=1)


def scan_chunk(T: int) -> int:
    """Chunk length ``c`` (a divisor of ``T``) of :func:`chunked_scan`: ``T`` itself (the plain loop) up to
    ``PLAIN_SCAN_MAX_T`` steps — there the extra fix-up pass over memory costs more than the ops it saves (T = 32:
    180 vs 250 us, measured) — else the divisor minimising the op count ``c + T/c``."""
    if T <= PLAIN_SCAN_MAX_T:
        return T
    return min((c for c in range(1, T + 1) if T % c == 0), key=lambda c: (c + T // c, -c))


class Scan:
    """``x_t <- x_t + lam * x_{t-1}`` in place, sequentially over ``t`` (``reverse``: with ``x_{t+1}``), on a fixed
    buffer ``x [K, T, B, N]``, ``lam [K, N]``; the slice views are built once, because creating them cost as much
    as the fused multiply-adds themselves (measured: 166 -> 67 us per scan at N = 32, T = 32).

    Chunked form (``c`` = ``chunk`` or :func:`scan_chunk`, a divisor of ``T``): a local scan inside chunks of ``c``
    steps (all chunks at once), a scan over the chunk ends with ``lam^c``, then one fix-up ``x += lam^(i+1) carry``:
    ``c + T/c + 1`` ops instead of ``T - 1``; with ``c = T`` it is the plain loop.
    """

    def __init__(self, x: torch.Tensor, reverse: bool, chunk: int | None = None) -> None:
        K, T, B, N = x.shape
        c = chunk or scan_chunk(T)
        if T % c:
            raise ValueError(f"chunked_scan: chunk {c} does not divide T = {T}")
        nc = T // c
        x5 = x.view(K, nc, c, B, N)
        self.c, self.fix = c, None
        self.powers = torch.arange(1, c + 1, device=x.device, dtype=x.dtype)[:, None]  # exponents 1..c: [c, 1]
        if not reverse:
            self.local = [(x5[:, :, i], x5[:, :, i - 1]) for i in range(1, c)]
            self.carry = [(x5[:, j, c - 1], x5[:, j - 1, c - 1]) for j in range(1, nc)]
            if nc > 1 and c > 1:
                self.fix = (x5[:, 1:, : c - 1], x5[:, :-1, c - 1 :])
        else:
            self.local = [(x5[:, :, i], x5[:, :, i + 1]) for i in range(c - 2, -1, -1)]
            self.carry = [(x5[:, j, 0], x5[:, j + 1, 0]) for j in range(nc - 2, -1, -1)]
            if nc > 1 and c > 1:
                self.fix = (x5[:, :-1, 1:], x5[:, 1:, :1])
        self.reverse = reverse

    def __call__(self, lam: torch.Tensor) -> None:
        lam4 = lam[:, None, None, :]  # against local slices [K, nc, B, N]
        for dst, src in self.local:
            dst.addcmul_(src, lam4)
        if not self.carry:
            return
        c = self.c
        pw = torch.pow(lam[:, None, :], self.powers)  # lam^1..c: [K, c, N]
        for dst, src in self.carry:
            dst.addcmul_(src, pw[:, c - 1 : c])
        if self.fix is not None:
            fix_pw = pw[:, None, : c - 1, None, :]  # against [K, nc - 1, c - 1, B, N]
            self.fix[0].addcmul_(self.fix[1], fix_pw.flip(2) if self.reverse else fix_pw)


def chunked_scan(x: torch.Tensor, lam: torch.Tensor, reverse: bool, chunk: int | None = None) -> torch.Tensor:
    """One :class:`Scan` of ``x [K, T, B, N]`` in place (``chunk``: a divisor of ``T``; default
    :func:`scan_chunk`); returns ``x``."""
    Scan(x, reverse, chunk)(lam)
    return x


def _bmm_into(dst: torch.Tensor, a: torch.Tensor, b: torch.Tensor, tmp: torch.Tensor) -> None:
    """``dst = a @ b`` (batched); straight into ``dst`` when it is contiguous (K = 1), else via ``tmp``."""
    if dst.is_contiguous():
        torch.bmm(a, b, out=dst)
    else:
        dst.copy_(torch.bmm(a, b, out=tmp))


class FlatAdamW:
    """AdamW (torch semantics: decoupled decay ``p *= 1 - lr*wd``, bias-corrected moments) on a flat ``[K, P]``
    buffer, with a per-entry learning-rate multiplier and weight-decay coefficient.

    Args:
        flat, grad: parameter and gradient buffers (same shape).
        lr_mult, weight_decay: ``[P]`` per-entry multiplier and decay.
        l1: ``[P]`` per-entry L1 strength or None: ``l1 * sign(p)`` is added to the gradient before the moments
            (the penalty ``sum l1 |p|``, as :func:`~rnnattn.training.optim.add_l1_subgradient` for torch's AdamW).
    """

    def __init__(
        self,
        flat: torch.Tensor,
        grad: torch.Tensor,
        lr_mult: torch.Tensor,
        weight_decay: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        l1: torch.Tensor | None = None,
    ) -> None:
        self.flat, self.grad = flat, grad
        self.l1 = None if l1 is None else l1.to(flat)
        self.lr_mult = lr_mult.to(flat)
        self.wd = (lr_mult * weight_decay).to(flat)  # torch applies p *= 1 - (lr * mult) * wd
        self.b1, self.b2 = betas
        self.eps = eps
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.step_count = 0
        self._tmp = torch.empty_like(flat)

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.step_count += 1
        t = self.step_count
        p, g, m, v, tmp = self.flat, self.grad, self.exp_avg, self.exp_avg_sq, self._tmp
        if self.l1 is not None:
            g.addcmul_(torch.sign(p), self.l1)
        p.addcmul_(p, self.wd, value=-lr)
        m.lerp_(g, 1 - self.b1)
        v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        bc1 = 1 - self.b1**t
        bc2_sqrt = math.sqrt(1 - self.b2**t)
        torch.sqrt(v, out=tmp).div_(bc2_sqrt).add_(self.eps)
        torch.div(m, tmp, out=tmp).mul_(self.lr_mult)
        p.add_(tmp, alpha=-lr / bc1)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], step_count: int) -> None:
        self.exp_avg.copy_(tensors["exp_avg"])
        self.exp_avg_sq.copy_(tensors["exp_avg_sq"])
        self.step_count = int(step_count)
