"""Timing of the loss implementations: the O(N log P) kernels against the loop formulation.

Each grid cell (P positives, N examples) times forward + backward of the fast functions
and of the loop references (``alrp_cli.losses.reference``, ``reference_rs``), and one
``torch.sort`` of the same logits as a floor. A loss with continuous targets (Rank & Sort)
gets each positive's IoU as 1 − its localisation error, in (0, 1]. Timings are medians
over repeats, interleaved in one process so that the ratios survive a noisy, shared
machine. Peak extra memory is measured on CUDA by the caching allocator, on Linux CPUs by
the process's peak resident set (reset before each measurement through
``/proc/self/clear_refs``).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from alrp_cli import registry
from alrp_cli.errors import UserError

DEFAULT_GRID: tuple[tuple[int, int], ...] = ((100, 200_000), (1_000, 2_000_000))
#: The losses with a fast kernel and a loop reference (:class:`~alrp_cli.registry.BenchForm`).
LOSSES = registry.names("bench")


@dataclass
class BenchRow:
    """One (loss, P, N) cell: median seconds and peak extra bytes of each implementation."""

    loss: str
    positives: int
    examples: int
    device: str
    dtype: str
    fast_s: float
    sort_s: float
    reference_s: float | None
    fast_peak_bytes: int | None
    reference_peak_bytes: int | None
    repeats: int

    @property
    def speedup(self) -> float | None:
        """Reference time over fast time."""
        return None if self.reference_s is None else self.reference_s / self.fast_s

    @property
    def fast_over_sort(self) -> float:
        """Fast time over the time of one ``torch.sort`` of the logits (≤ 1 is the goal)."""
        return self.fast_s / self.sort_s

    def to_dict(self) -> dict:
        """JSON form, with the derived ratios."""
        return {**asdict(self), "speedup": self.speedup, "fast_over_sort": self.fast_over_sort}


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``PxN`` (e.g. ``1000x2000000``; ``_`` and ``k``/``M`` suffixes allowed)."""

    def number(part: str) -> int:
        part = part.strip().replace("_", "")
        mult = {"k": 1_000, "K": 1_000, "M": 1_000_000}.get(part[-1:], 1)
        value = int(float(part[:-1] if mult > 1 else part) * mult)
        if value < 1:
            raise ValueError
        return value

    try:
        p_text, n_text = text.lower().replace("m", "M").split("x")
        positives, examples = number(p_text), number(n_text)
    except ValueError:
        raise UserError(f"--size {text!r}: expected PxN with P ≤ N, e.g. 1000x2M") from None
    if positives > examples:
        raise UserError(f"--size {text!r}: P ({positives}) cannot exceed N ({examples})")
    return positives, examples


def make_inputs(
    positives: int, examples: int, *, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detector-like inputs: logits Tensor[N], targets Tensor[N] int64, loc_errors Tensor[P].

    Negatives ~ N(0, 1); positives ~ N(1, 1) so that the two overlap, as in training.
    """
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(examples, generator=g)
    targets = torch.zeros(examples, dtype=torch.int64)
    targets[torch.randperm(examples, generator=g)[:positives]] = 1
    logits += targets
    loc_errors = torch.rand(positives, generator=g)
    return logits.to(device, dtype), targets.to(device), loc_errors.to(device, dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _proc_status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_extra_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory above the current level while ``fn`` runs (None where unmeasurable)."""
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    base = _proc_status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    fn()
    peak = _proc_status("VmHWM")
    return None if base is None or peak is None else max(peak - base, 0)


def loss_targets(loss: str, targets: torch.Tensor, loc_errors: torch.Tensor) -> torch.Tensor:
    """The targets ``loss`` takes on these inputs (its :class:`~alrp_cli.registry.BenchForm`'s
    ``targets``: IoUs in (0, 1] for a loss with continuous targets), made before timing."""
    form = registry.get(loss, "bench").bench
    assert form is not None
    return targets if form.targets is None else form.targets(targets, loc_errors)


def _runner(loss: str, fast: bool, logits, targets, loc_errors) -> Callable[[], object]:
    form = registry.get(loss, "bench").bench
    assert form is not None
    targets = loss_targets(loss, targets, loc_errors)

    def run() -> None:
        x = logits.detach().requires_grad_()
        if fast:
            form.fast(x, targets, loc_errors).backward()
        else:
            form.loop(x, targets, loc_errors)

    return run


def run_bench(
    grid: list[tuple[int, int]] | tuple[tuple[int, int], ...] = DEFAULT_GRID,
    *,
    losses: tuple[str, ...] = LOSSES,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    reference_repeats: int = 1,
    reference: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time every (loss, P, N) cell of ``grid``; see the module docstring.

    Args:
        grid: (P, N) pairs.
        losses: any of :data:`LOSSES` (the registry's losses with a loop reference).
        device, dtype: where and in what the logits live.
        repeats: timed runs of the fast kernels and of the sort (median reported).
        reference_repeats: timed runs of the loop reference (it is slow); 0 or
            ``reference=False`` skips it.
        progress: called with a description after each measurement.
    """
    device = torch.device(device)
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    for name in losses:
        if name not in LOSSES:
            raise UserError(f"--loss {name!r}: expected one of {', '.join(LOSSES)}")
    rows = []
    for positives, examples in grid:
        logits, targets, loc_errors = make_inputs(
            positives, examples, device=device, dtype=dtype, seed=seed
        )
        for loss in losses:
            fast = _runner(loss, True, logits, targets, loc_errors)
            slow = _runner(loss, False, logits, targets, loc_errors)
            sort = functools.partial(torch.sort, logits)
            fast()  # warm-up
            fast_times, sort_times = [], []
            for _ in range(repeats):
                fast_times.append(_seconds(fast, device))
                sort_times.append(_seconds(sort, device))
            fast_peak = peak_extra_bytes(fast, device)
            ref_s = ref_peak = None
            if reference and reference_repeats > 0:
                ref_s = statistics.median(_seconds(slow, device) for _ in range(reference_repeats))
                ref_peak = peak_extra_bytes(slow, device)
            rows.append(
                BenchRow(
                    loss=loss,
                    positives=positives,
                    examples=examples,
                    device=str(device),
                    dtype=str(dtype).removeprefix("torch."),
                    fast_s=statistics.median(fast_times),
                    sort_s=statistics.median(sort_times),
                    reference_s=ref_s,
                    fast_peak_bytes=fast_peak,
                    reference_peak_bytes=ref_peak,
                    repeats=repeats,
                )
            )
            if progress is not None:
                progress(f"{loss} P={positives:,} N={examples:,}")
    return rows
