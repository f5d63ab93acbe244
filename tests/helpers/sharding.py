"""Global-ranking cases: one batch cut into per-rank shards, run per rank, checked against
the single-process loss and the loop reference on the whole batch (shared by the tests of
the in-process fake and of real gloo processes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from alrp_cli.losses import alrp_loss, ap_loss
from alrp_cli.losses.collective import Collective
from alrp_cli.losses.reference import alrp_loss_reference, ap_loss_reference
from tests.helpers.loss_problems import make_problem


@dataclass
class Case:
    """A whole batch, its cut into shards (element counts per rank) and δ."""

    name: str
    logits: Tensor
    targets: Tensor
    loc_errors: Tensor
    sizes: list[int]
    delta: float

    def shard(self, rank: int) -> tuple[Tensor, Tensor, Tensor]:
        """This rank's logits, targets and loc_errors (its positives' errors)."""
        lo = sum(self.sizes[:rank])
        hi = lo + self.sizes[rank]
        pos_before = int((self.targets[:lo] == 1).sum())
        pos_here = int((self.targets[lo:hi] == 1).sum())
        e = self.loc_errors[pos_before : pos_before + pos_here]
        return self.logits[lo:hi], self.targets[lo:hi], e


def even_sizes(n: int, world_size: int) -> list[int]:
    """Shard sizes of n elements over world_size ranks, as equal as possible."""
    return [len(c) for c in torch.tensor_split(torch.arange(n), world_size)]


def make_case(
    name: str,
    seed: int,
    regime: str,
    n: int,
    world_size: int,
    delta: float,
    dtype: torch.dtype = torch.float64,
    *,
    sizes: list[int] | None = None,
    no_positive_on: tuple[int, ...] = (),
) -> Case:
    """A case from :func:`make_problem`; ``no_positive_on`` turns those ranks' positives
    into negatives."""
    logits, targets, e = make_problem(seed, regime, n, dtype)
    sizes = sizes or even_sizes(n, world_size)
    if no_positive_on:
        keep = torch.ones(targets.numel(), dtype=torch.bool)
        bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
        for rank in no_positive_on:
            keep[bounds[rank] : bounds[rank + 1]] = False
        e = e[keep[targets == 1]]
        targets = torch.where(keep | (targets != 1), targets, torch.zeros_like(targets))
    return Case(name, logits, targets, e, sizes, delta)


def standard_cases(world_size: int) -> list[Case]:
    """The loss-core regimes, each in float64 and float32, for ``world_size`` ranks."""
    w = world_size
    cases = []
    for dtype in (torch.float64, torch.float32):
        tag = "f64" if dtype == torch.float64 else "f32"
        for delta in (0.0, 1.0):
            cases += [
                make_case(f"ties-{tag}-d{delta}", 1, "ties", 120, w, delta, dtype),
                make_case(f"overlapping-{tag}-d{delta}", 2, "overlapping", 150, w, delta, dtype),
                make_case(f"ignored-{tag}-d{delta}", 3, "ignored", 150, w, delta, dtype),
                make_case(
                    f"no-positive-on-rank-0-{tag}-d{delta}",
                    4,
                    "overlapping",
                    120,
                    w,
                    delta,
                    dtype,
                    no_positive_on=(0,),
                ),
                make_case(
                    f"no-positive-anywhere-{tag}-d{delta}",
                    5,
                    "overlapping",
                    90,
                    w,
                    delta,
                    dtype,
                    no_positive_on=tuple(range(w)),
                ),
            ]
        cases.append(make_case(f"few-positives-{tag}-d0.5", 6, "few_positives", 200, w, 0.5, dtype))
    # Uneven shards, one of them empty.
    sizes = [0, 70, *[30] * (w - 2)]
    cases.append(make_case("uneven-with-empty-shard", 7, "ties", sum(sizes), w, 0.0, sizes=sizes))
    return cases


def run_local(
    collective: Collective | None, logits: Tensor, targets: Tensor, e: Tensor, delta: float
) -> dict[str, Tensor]:
    """aLRP (cls + loc backward) and AP (backward) on one rank's inputs; detached results."""
    x = logits.clone().requires_grad_()
    ee = e.clone().requires_grad_()
    out = alrp_loss(x, targets, ee, delta=delta, collective=collective)
    (out.cls + out.loc).backward()
    y = logits.clone().requires_grad_()
    ap = ap_loss(y, targets, delta=delta, collective=collective)
    ap.backward()
    assert x.grad is not None and ee.grad is not None and y.grad is not None
    return {
        "cls": out.cls.detach(),
        "loc": out.loc.detach(),
        "rank": out.rank,
        "grad_logits": x.grad,
        "grad_loc": ee.grad,
        "ap": ap.detach(),
        "grad_ap": y.grad,
    }


def run_rank(collective: Collective, case: Case) -> dict[str, Tensor]:
    """:func:`run_local` on this rank's shard of ``case``."""
    return run_local(collective, *case.shard(collective.rank), case.delta)


def assert_close(actual: Tensor, expected: Tensor, rtol: float, what: str) -> None:
    """Agreement relative to the largest magnitude of the expected tensor."""
    actual = actual.detach().to(torch.float64)
    expected = expected.detach().to(torch.float64)
    assert actual.shape == expected.shape, f"{what}: {actual.shape} vs {expected.shape}"
    if expected.numel() == 0:
        return
    scale = max(float(expected.abs().max()), 1e-12)
    err = float((actual - expected).abs().max())
    assert err <= rtol * scale, f"{what}: max abs error {err:.3g} > {rtol:g} × {scale:.3g}"


SCALARS = ("cls", "loc", "ap")
ROWS = ("rank", "grad_logits", "grad_loc", "grad_ap")


def merge_ranks(
    case: Case, per_rank: list[dict[str, Tensor]], scalars: tuple[str, ...], rows: tuple[str, ...]
) -> dict[str, Tensor]:
    """Check that every rank has the same ``scalars``, in the logits dtype; return them and
    the ``rows`` of every rank concatenated in rank order."""
    for key in scalars:
        for r, res in enumerate(per_rank):
            assert torch.equal(res[key], per_rank[0][key]), f"{case.name}: {key} rank {r} differs"
            assert res[key].dtype == case.logits.dtype, f"{case.name}: {key} dtype"
    merged = {k: torch.cat([res[k] for res in per_rank]) for k in rows}
    merged.update({k: per_rank[0][k] for k in scalars})
    return merged


def global_rtol(case: Case) -> float:
    """The tolerance of the global-ranking checks: 1e-9 in float64, 1e-5 in float32."""
    return 1e-9 if case.logits.dtype == torch.float64 else 1e-5


def check_global(case: Case, per_rank: list[dict[str, Tensor]]) -> None:
    """Every rank has the same values; values, ranks and gradients (rows concatenated in rank
    order) equal the single-process loss and the loop reference on the whole batch."""
    merged = merge_ranks(case, per_rank, SCALARS, ROWS)
    single = run_local(None, case.logits, case.targets, case.loc_errors, case.delta)
    rtol = global_rtol(case)
    for key in (*SCALARS, *ROWS):
        assert_close(merged[key], single[key], rtol, f"{case.name}: {key} vs single process")
    x = case.logits.double()
    e = case.loc_errors.double()
    ref = alrp_loss_reference(x, case.targets, e, delta=case.delta)
    ref_ap = ap_loss_reference(x, case.targets, delta=case.delta)
    expected = {
        "cls": ref.cls,
        "loc": ref.loc,
        "rank": ref.rank,
        "grad_logits": ref.grad_logits,
        "ap": ref_ap.cls,
        "grad_ap": ref_ap.grad_logits,
    }
    for key, value in expected.items():
        assert_close(merged[key], value, rtol, f"{case.name}: {key} vs loop reference")
    if e.numel():  # d(cls + loc)/de is d loc/de: L_cls does not depend on e
        assert_close(merged["grad_loc"], ref.grad_loc, rtol, f"{case.name}: d loc/de vs loop")
