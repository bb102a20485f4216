"""Two interchangeable ways to take a training step: the generic autograd engine (any model, torch AdamW) and the
fast engine (diagonal :class:`GatedLinearRNN` only; hand-written backward and flat AdamW, see :mod:`.fast`).

Both expose the same small interface used by the loop: ``prepare(batch)``, ``step(data, i, lr) -> loss tensor``,
``eval_loss(data) -> float``, ``polish(data, iters, history) -> loss``, ``sync()`` (weights into the model),
``state_tensors()/load_state_tensors()``.
"""

from __future__ import annotations

import torch

from rnnattn.tasks.base import Batch, Task
from rnnattn.training import fast, lm
from rnnattn.training.config import TrainConfig
from rnnattn.training.optim import add_l1_subgradient, flat_multipliers, make_adamw, set_lr

EVAL_CHUNK = 8192


def _last_only(task: Task) -> bool:
    return task.loss_positions == [task.seq_len - 1]


class AutogradEngine:
    name = "autograd"

    def __init__(
        self, model, task: Task, config: TrainConfig, device: torch.device, dtype: torch.dtype
    ) -> None:
        if config.polish_method == "lm":
            raise ValueError("polish_method 'lm' needs the fast engine (a diagonal GatedLinearRNN)")
        self.model, self.task, self.device, self.dtype = model, task, device, dtype
        self.opt = make_adamw(model, config)
        self.l1 = config.l1

    def prepare(self, b: Batch):
        return Batch(b.x.to(self.device, self.dtype), b.y.to(self.device, self.dtype), b.mask.to(self.device))

    def prepare_eval(self, b: Batch):
        return self.prepare(b)

    def _loss(self, b: Batch, i: int | slice):
        return self.task.loss(self.model(b.x[i]), b.y[i], b.mask[i])

    def step(self, data: Batch, i: int, lr: float) -> torch.Tensor:
        set_lr(self.opt, lr)
        self.opt.zero_grad(set_to_none=True)
        loss = self._loss(data, i)
        loss.backward()
        if self.l1:
            add_l1_subgradient(self.opt.param_groups[0]["params"], self.l1)  # group 0: the non-recurrence ones
        self.opt.step()
        return loss.detach()

    @torch.no_grad()
    def eval_loss(self, data: Batch) -> float:
        n = data.x.shape[0]
        tot = 0.0
        for s in range(0, n, EVAL_CHUNK):
            sl = slice(s, min(s + EVAL_CHUNK, n))
            tot += float(self.task.loss(self.model(data.x[sl]), data.y[sl], data.mask[sl])) * (
                sl.stop - sl.start
            )
        return tot / n

    def polish(self, data: Batch, iters: int, history: int) -> float:
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=iters,
            history_size=history,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = self.task.loss(self.model(data.x), data.y, data.mask)
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            return float(self.task.loss(self.model(data.x), data.y, data.mask))

    def sync(self) -> None:
        pass

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        sd = self.opt.state_dict()
        for i, st in sd["state"].items():
            for k, v in st.items():
                out[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(float(v))
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], step_count: int) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        sd = self.opt.state_dict()
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, i, name = k.split(".", 2)
                state.setdefault(int(i), {})[name] = v
        sd["state"] = state
        self.opt.load_state_dict(sd)


class FastEngine:
    name = "fast"

    def __init__(
        self, model, task: Task, config: TrainConfig, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.model, self.task, self.config = model, task, config
        self.lm_mu = 1e-3  # Levenberg-Marquardt damping, carried across rounds (and saved for exact resume)
        self.T = task.seq_len
        self.last = _last_only(task)
        if task.loss_positions is not None and not self.last:
            raise ValueError("fast engine: supports loss on every step or on the last step only")
        self.net = fast.StackedGatedRNN([model], device=device, dtype=dtype)
        mult, wd, l1 = flat_multipliers(self.net.slices(), self.net.P, {"nu"}, config)
        self.opt = fast.FlatAdamW(
            self.net.flat, self.net.grad, mult.to(device), wd.to(device), tuple(config.betas), config.eps, l1
        )

    def prepare(self, b: Batch):
        """``[S, B, T, ·]`` -> ``(z [S, T*B, d+1], target [S, R, d_out])``."""
        return self.net.prepare(b.x, b.y, self.last)

    def prepare_eval(self, b: Batch):
        """A single set of ``n`` sequences -> ``(z [1, T*n, d+1], target [1, R, d_out])``."""
        return self.net.prepare(b.x[None], b.y[None], self.last)

    def step(self, data, i: int, lr: float) -> torch.Tensor:
        z, y = data
        loss = self.net.loss_and_grad(z[i : i + 1], y[i : i + 1], self.T, self.last)
        self.opt.step(lr)
        return loss[0]

    def eval_loss(self, data) -> float:
        z, y = data  # one "step" holding the whole set: z [1, T*n, ·]
        n = y.shape[1] if self.last else y.shape[1] // self.T
        return _chunked_eval(self.net, z, y, self.T, self.last, n)[0]

    def polish(self, data, iters: int, history: int) -> float:
        if self.config.polish_method == "lm":
            return self._polish_lm(data, iters)
        z, y = data
        p = torch.nn.Parameter(self.net.flat.view(-1))
        opt = torch.optim.LBFGS(
            [p],
            lr=1.0,
            max_iter=iters,
            history_size=history,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )

        def closure():
            loss = self.net.loss_and_grad(z, y, self.T, self.last)
            p.grad = self.net.grad.view(-1)
            return loss.sum()

        opt.step(closure)
        return float(self.net.loss(z, y, self.T, self.last)[0])

    def _polish_lm(self, data, iters: int) -> float:
        """LM in float64 from the current weights (rounded back to the training dtype after the round, so a round
        always starts from what a checkpoint holds and resume stays exact)."""
        z, y = data  # [1, T*n, d+1] time-major rows, [1, R, d_out]
        n = y.shape[1] if self.last else y.shape[1] // self.T
        z64 = z[0].view(self.T, n, -1).transpose(0, 1).to(torch.float64).contiguous()  # [n, T, d+1]
        y64 = (y[0].view(n, 1, -1) if self.last else y[0].view(self.T, n, -1).transpose(0, 1)).to(torch.float64)
        flat = self.net.flat[0].to(torch.float64)
        shapes = dict(self.net.shapes)
        rtol = self.config.polish_freeze_zeros
        active = lm.freeze_small(flat, shapes, rtol) if rtol else None
        _, self.lm_mu = lm.levenberg_marquardt(
            flat, shapes, z64, y64.contiguous(), iters, self.lm_mu, self.last, active
        )
        self.net.flat[0].copy_(flat)
        return float(self.net.loss(z, y, self.T, self.last)[0])

    def sync(self) -> None:
        self.net.write_back([self.model])

    def state_tensors(self) -> dict[str, torch.Tensor]:
        self.sync()
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({f"opt.{k}": v for k, v in self.opt.state_tensors().items()})
        out["lm_mu"] = torch.tensor(self.lm_mu, dtype=torch.float64)
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], step_count: int) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.net.load_from([self.model])
        if "lm_mu" in tensors:
            self.lm_mu = float(tensors["lm_mu"])
        self.opt.load_state_tensors(
            {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}, step_count
        )


def _chunked_eval(
    net: fast.StackedGatedRNN, z: torch.Tensor, y: torch.Tensor, T: int, last: bool, n: int
) -> list[float]:
    """Mean loss per model over ``n`` sequences, in chunks of ``EVAL_CHUNK`` sequences (time-major rows)."""
    K = z.shape[0]
    z4 = z.view(K, T, n, -1)
    y4 = y.view(K, n, -1) if last else y.view(K, T, n, -1)
    tot = torch.zeros(K, dtype=torch.float64)
    for s in range(0, n, EVAL_CHUNK):
        e = min(s + EVAL_CHUNK, n)
        zc = z4[:, :, s:e].reshape(K, T * (e - s), -1)
        yc = y4[:, s:e] if last else y4[:, :, s:e].reshape(K, T * (e - s), -1)
        tot += net.loss(zc.contiguous(), yc.contiguous(), T, last).double().cpu() * (e - s)
    return (tot / n).tolist()


def make_engine(model, task: Task, config: TrainConfig, device: torch.device, dtype: torch.dtype):
    want = config.engine
    if want == "auto":
        want = (
            "fast"
            if fast.supports(model) and (task.loss_positions is None or _last_only(task))
            else "autograd"
        )
    if want == "fast" and not fast.supports(model):
        raise ValueError(
            f"engine 'fast' supports only diagonal GatedLinearRNN models, not {type(model).__name__}"
        )
    return (FastEngine if want == "fast" else AutogradEngine)(model, task, config, device, dtype)
