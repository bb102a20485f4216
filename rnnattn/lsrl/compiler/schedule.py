"""Pass 2 — scheduling: assign every unit to a *stage* (a layer of one kind: ``relu``, ``mul`` or ``state``).

A stage ``k`` reads only stage ``k-1``'s lanes, so a lane produced at stage ``p`` and last read at stage ``q``
must be *carried* through stages ``p+1 .. q-1``. Carry costs per stage kind (in lanes): ``state`` 1 (a pass-through row,
``A = 0``, ``B = I``), ``mul`` 1 (``x * 1``), ``relu`` 1 if the lane's sign is known, else 2 (``[x+; x-]``).

This replaces the reference's debranching rewrites (App. A), whose pass-through duplication made the direct
token program 296,609 states wide. We search over a handful of list-scheduling policies (which stage kind to
emit next), then sink every unit to the latest stage of its kind that lowers the total width, drop stages left
empty, and keep the cheapest result. Cost = total lanes over all stages (units + carries), a proxy for both
the state size and the dense parameter count.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from .lower import UNK, Lowered

KINDS = ("state", "relu", "mul")


@dataclass
class Schedule:
    """``kinds[k-1]`` is the kind of stage ``k`` (stage 0 = the input); ``stage[u]`` = stage of unit ``u``."""

    kinds: list[str]
    stage: list[int]
    cost: int


def carry_unit_cost(kind: str, sign: int) -> int:
    return 2 if kind == "relu" and sign == UNK else 1


class _Sched:
    def __init__(self, g: Lowered) -> None:
        self.g = g
        n = len(g.units)
        self.deps_lanes = [sorted(u.deps()) for u in g.units]
        self.deps_units = [sorted({g.lane_unit[l] for l in d}) for d in self.deps_lanes]
        self.consumers: list[list[int]] = [[] for _ in range(n)]
        for u, ds in enumerate(self.deps_units):
            for d in ds:
                self.consumers[d].append(u)
        self.out_lanes = sorted({l for e in g.outputs for l in e.coefs})
        # height: longest unit chain to a sink (critical-path priority)
        self.height = [0] * n
        for u in reversed(self._topo()):
            self.height[u] = 1 + max((self.height[c] for c in self.consumers[u]), default=0)

    def _topo(self) -> list[int]:
        indeg = [len(d) for d in self.deps_units]
        order, ready = [], [u for u in range(len(indeg)) if indeg[u] == 0]
        while ready:
            u = ready.pop()
            order.append(u)
            for c in self.consumers[u]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        return order

    # ---- list scheduling
    # -----------------------------------------------------------------------------------------
    def greedy(self, policy: str | tuple[str, ...]) -> Schedule:
        g = self.g
        n = len(g.units)
        stage = [-1] * n
        stage[0] = 0
        remaining = [len(d) for d in self.deps_units]
        ready = {u for u in range(1, n) if remaining[u] == 0}
        for c in self.consumers[0]:
            remaining[c] -= 1
            if remaining[c] == 0:
                ready.add(c)
        kinds: list[str] = []
        while ready:
            avail = {g.units[u].kind for u in ready}
            if policy == "critical":
                best = max(ready, key=lambda u: (self.height[u], -u))
                kind = g.units[best].kind
            elif policy == "most":
                kind = max(
                    avail,
                    key=lambda k: (sum(len(g.units[u].lanes) for u in ready if g.units[u].kind == k), k),
                )
            else:
                kind = next(k for k in policy if k in avail)
            kinds.append(kind)
            k = len(kinds)
            batch = [u for u in ready if g.units[u].kind == kind]
            for u in batch:
                stage[u] = k
                ready.discard(u)
            for u in batch:
                for c in self.consumers[u]:
                    remaining[c] -= 1
                    if remaining[c] == 0:
                        ready.add(c)
        return self.finish(kinds, stage)

    # ---- cost model
    # ----------------------------------------------------------------------------------------------
    def lane_last_use(self, kinds: list[str], stage: list[int]) -> dict[int, int]:
        last: dict[int, int] = {}
        end = len(kinds) + 1
        for l in self.out_lanes:
            last[l] = end
        for u, ds in enumerate(self.deps_lanes):
            for l in ds:
                if last.get(l, -1) < stage[u]:
                    last[l] = stage[u]
        return last

    def cost(self, kinds: list[str], stage: list[int]) -> int:
        pref = self._prefix(kinds)
        total = sum(len(u.lanes) for u in self.g.units[1:])
        for l, q in self.lane_last_use(kinds, stage).items():
            total += self._carry(pref, stage[self.g.lane_unit[l]], q, self.g.lane_sign[l])
        return total

    @staticmethod
    def _prefix(kinds: list[str]) -> dict[str, list[int]]:
        pref = {k: [0] for k in KINDS}
        for kd in kinds:
            for k in KINDS:
                pref[k].append(pref[k][-1] + (kd == k))
        return pref

    @staticmethod
    def _carry(pref: dict[str, list[int]], p: int, q: int, sign: int) -> int:
        if q - p <= 1:
            return 0
        c = 0
        for k in KINDS:
            cnt = pref[k][q - 1] - pref[k][p]
            if cnt:
                c += cnt * carry_unit_cost(k, sign)
        return c

    # ---- sinking
    # ---------------------------------------------------------------------------------------------------
    def sink(self, kinds: list[str], stage: list[int]) -> None:
        """Moves units to later stages of their kind while that lowers the carry cost (in place)."""
        g = self.g
        end = len(kinds) + 1
        pref = self._prefix(kinds)
        uses: dict[int, dict[int, int]] = {}
        for u, ds in enumerate(self.deps_lanes):
            for l in ds:
                d = uses.setdefault(l, {})
                d[stage[u]] = d.get(stage[u], 0) + 1
        for l in self.out_lanes:
            d = uses.setdefault(l, {})
            d[end] = d.get(end, 0) + 1
        by_kind = {k: [i + 1 for i, kd in enumerate(kinds) if kd == k] for k in KINDS}
        for u in sorted(range(1, len(g.units)), key=lambda u: -stage[u]):
            unit = g.units[u]
            cur = stage[u]
            limit = min((stage[c] for c in self.consumers[u]), default=end)
            if any(l in self.out_lanes for l in unit.lanes):
                limit = min(limit, end)
            cands = [m for m in by_kind[unit.kind] if cur < m < limit]
            if not cands:
                continue

            def local_cost(m: int, unit: Any = unit, u: int = u, cur: int = cur) -> int:
                c = 0
                for l in unit.lanes:
                    q = max(uses.get(l, {}), default=m)
                    c += self._carry(pref, m, q, g.lane_sign[l])
                for l in self.deps_lanes[u]:
                    d = uses[l]
                    others = max((s for s, cnt in d.items() if s != cur or cnt > 1), default=-1)
                    q = max(others, m)
                    c += self._carry(pref, stage[g.lane_unit[l]], q, g.lane_sign[l])
                return c

            best, best_c = cur, local_cost(cur)
            for m in cands:
                cm = local_cost(m)
                if cm < best_c:
                    best, best_c = m, cm
            if best != cur:
                for l in self.deps_lanes[u]:
                    d = uses[l]
                    d[cur] -= 1
                    if not d[cur]:
                        del d[cur]
                    d[best] = d.get(best, 0) + 1
                stage[u] = best

    def compact(self, kinds: list[str], stage: list[int]) -> tuple[list[str], list[int]]:
        """Removes stages without units and merges neighbouring stages of the same kind."""
        used = sorted({s for s in stage[1:]})
        new_kinds: list[str] = []
        remap = {0: 0}
        for s in used:
            if (
                new_kinds
                and new_kinds[-1] == kinds[s - 1]
                and not self._conflict(stage, s, remap, len(new_kinds))
            ):
                remap[s] = len(new_kinds)
            else:
                new_kinds.append(kinds[s - 1])
                remap[s] = len(new_kinds)
        return new_kinds, [remap[s] for s in stage]

    def _conflict(self, stage: list[int], s: int, remap: dict[int, int], target: int) -> bool:
        # merging stage s into new stage `target` is invalid if a unit at s depends on a unit mapped to
        # `target`
        for u in range(1, len(stage)):
            if stage[u] == s and any(remap.get(stage[d]) == target for d in self.deps_units[u]):
                return True
        return False

    def finish(self, kinds: list[str], stage: list[int]) -> Schedule:
        for _ in range(3):
            before = self.cost(kinds, stage)
            self.sink(kinds, stage)
            kinds, stage = self.compact(kinds, stage)
            if self.cost(kinds, stage) >= before:
                break
        return Schedule(kinds, stage, self.cost(kinds, stage))


def schedule(g: Lowered) -> Schedule:
    """Returns the cheapest schedule over the list-scheduling policies (see module docstring)."""
    s = _Sched(g)
    if len(g.units) == 1:
        return Schedule([], [0], 0)
    policies: list = ["critical", "most"] + list(itertools.permutations(KINDS))
    best: Schedule | None = None
    for p in policies:
        cand = s.greedy(p)
        if best is None or (cand.cost, len(cand.kinds)) < (best.cost, len(best.kinds)):
            best = cand
    assert best is not None
    return best
