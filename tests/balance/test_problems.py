"""Random problems: reproducible from (seed, trial), valid, and spread across the regimes."""

from __future__ import annotations

import torch

from alrp_cli.balance.problems import BIG_EVERY, MAX_ABS_LOGIT, REGIMES, make_problem, trial_seed

KW = {"max_positives": 300, "max_negatives": 3000, "deltas": (0.0, 0.5, 1.0, 2.0)}


def test_same_seed_and_trial_give_the_same_problem() -> None:
    a = make_problem(7, 11, **KW)
    b = make_problem(7, 11, **KW)
    assert a.seed == b.seed == trial_seed(7, 11)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.targets, b.targets)
    assert torch.equal(a.loc_errors, b.loc_errors)
    assert (a.delta, a.regime) == (b.delta, b.regime)


def test_neighbouring_seeds_and_trials_differ() -> None:
    seeds = {trial_seed(s, t) for s in range(4) for t in range(25)}
    assert len(seeds) == 100
    assert all(0 <= s < 2**32 for s in seeds)
    a, b = make_problem(0, 3, **KW), make_problem(1, 3, **KW)
    assert a.logits.shape != b.logits.shape or not torch.equal(a.logits, b.logits)


def test_problems_are_valid_and_cover_the_regimes() -> None:
    seen_regimes, seen_deltas = set(), set()
    with_ignored = with_ties = wide = 0
    for trial in range(60):
        p = make_problem(3, trial, **KW)
        t = p.targets
        assert p.logits.dtype == torch.float32 and t.dtype == torch.int64
        assert p.logits.shape == t.shape
        assert set(t.unique().tolist()) <= {-1, 0, 1}
        assert 1 <= p.num_positives <= KW["max_positives"]
        assert 1 <= p.num_negatives <= KW["max_negatives"]
        assert p.loc_errors.shape == (p.num_positives,)
        assert bool(((p.loc_errors >= 0) & (p.loc_errors < 1)).all())
        assert float(p.logits.abs().max()) <= MAX_ABS_LOGIT
        if trial % BIG_EVERY == BIG_EVERY - 1:
            assert p.num_negatives == KW["max_negatives"]
        seen_regimes.add(p.regime)
        seen_deltas.add(p.delta)
        with_ignored += bool((t == -1).any())
        with_ties += p.logits.unique().numel() < p.logits.numel() // 2
        wide += float(p.logits.abs().max()) > 50
    assert seen_regimes == set(REGIMES)
    assert seen_deltas == set(KW["deltas"])
    assert with_ignored >= 10 and with_ties >= 5 and wide >= 3


def test_ignored_pairs_score_high_so_a_leak_would_show() -> None:
    for trial in range(30):
        p = make_problem(5, trial, **KW)
        ign = p.targets == -1
        if ign.any():
            assert float(p.logits[ign].min()) >= float(p.logits[~ign].max()) - 1e-3
            return
    raise AssertionError("no trial with ignored pairs")


def test_dtype_only_casts() -> None:
    a = make_problem(2, 4, dtype=torch.float64, **KW)
    b = make_problem(2, 4, dtype=torch.float32, **KW)
    assert a.logits.dtype == torch.float64
    assert torch.equal(a.logits.to(torch.float32), b.logits)
