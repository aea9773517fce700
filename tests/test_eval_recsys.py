"""Recommender protocols on MovieLens: replay (frozen control, peers, latency), cold start, the bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lifelong.envs.recsys import load_movielens
from lifelong.errors import InvalidInput
from lifelong.eval.recsys import (
    background_users,
    cold_start,
    cold_start_recall,
    held_out_users,
    learn_throughput,
    replay,
)
from lifelong.learners import ImplicitFactorization, Popularity

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
pytestmark = pytest.mark.skipif(
    not (ML100K / "u.data").is_file(), reason=f"MovieLens 100K not found in {ML100K}"
)


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return load_movielens(ML100K)


def test_ranker_replay_beats_its_frozen_control_and_reports_latency(data) -> None:  # type: ignore[no-untyped-def]
    learner = replay(
        ImplicitFactorization(seed=0), data, n_events=8000, predicts_ratings=False, latency_every=10
    )
    frozen = replay(
        ImplicitFactorization(seed=0), data, n_events=8000, predicts_ratings=False, frozen_after=1000
    )
    summary, control = learner.summary(), frozen.summary()
    assert summary["hr_at_k"] > control["hr_at_k"] + 0.02, (summary, control)
    assert frozen.learned == 1000 and learner.learned == 8000
    assert len(learner.feedback_to_policy_ms) >= 700 and np.percentile(learner.feedback_to_policy_ms, 99) < 50
    x, hr = learner.curves(2000)["hr_at_k"]
    assert x == [2000.0, 4000.0, 6000.0, 8000.0] and all(0 <= v <= 1 for v in hr)


def test_peers_run_on_the_same_stream(data) -> None:  # type: ignore[no-untyped-def]
    from river import optim, reco

    from lifelong.interop.recsys import RiverRecommender

    peer = RiverRecommender(reco.BiasedMF(n_factors=4, latent_optimizer=optim.SGD(0.05)))
    trace = replay(peer, data, n_events=3000, rank_every=20)
    summary = trace.summary()
    assert 0.5 < summary["rmse"] < 1.5 and 50 <= summary["ranked"] <= 120 and trace.learned == 3000
    assert learn_throughput(RiverRecommender(reco.BiasedMF(n_factors=4)), data, 2000) > 1000
    assert learn_throughput(Popularity(), data, 2000) > 1000
    with pytest.raises(InvalidInput):
        replay(peer, data, n_events=10, rank_every=0)


def test_cold_start_recall_on_a_fixed_held_out_set(data) -> None:  # type: ignore[no-untyped-def]
    held_out = held_out_users(data, 20, seed=1)
    assert held_out == held_out_users(data, 20, seed=1)  # fixed: the same users for every draw
    background = background_users(data, held_out, 40, seed=0)
    assert not set(background) & set(held_out)
    by_k = cold_start_recall(
        lambda s: ImplicitFactorization(seed=s), data, held_out, background, ks=(0, 5, 20)
    )
    assert sorted(by_k) == [0, 5, 20] and all(0 <= v <= 1 for v in by_k.values())
    popular = cold_start_recall(lambda s: Popularity(), data, held_out, background, ks=(0, 20))
    assert popular[0] > popular[20]  # later positives are less popular items: popularity decays with k
    # ... and that is the targets, not learning: the frozen control falls as much, a user-blind model
    # gains nothing from the user's positives
    run = cold_start(lambda s: Popularity(), data, held_out, background, ks=(0, 20))
    assert run.recall == popular and run.frozen == popular and run.gain == {0: 0.0, 20: 0.0}
    learner = cold_start(
        lambda s: ImplicitFactorization(seed=s), data, held_out, background, ks=(0, 20), as_of="arrival"
    )
    assert (
        learner.as_of == "arrival"
        and learner.gain[0] == 0.0
        and all(0 <= v <= 1 for v in learner.recall.values())
    )
    with pytest.raises(InvalidInput):
        held_out_users(data, 10_000)


def test_bench_recsys_writes_the_promised_json(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    command = [sys.executable, "-m", "lifelong.cli", "bench", "recsys", "--data", str(ML100K)]
    done = subprocess.run(
        [*command, "--out", str(out), "--seeds", "1", "--steps", "3000"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "recsys.json").read_text())
    for key in ("rmse", "hr_at_10", "events_per_second"):
        assert {"ours.rating", "river.BiasedMF", "river.FunkMF"} <= {k.split(" ")[0] for k in result[key]}, (
            key
        )
    assert set(result["recall_at_10_by_k"]["ours.ranking"]) == {"0", "1", "2", "5", "10", "20"}
    assert result["feedback_to_policy_ms"]["p99"] > 0 and result["feedback_to_policy_logged_ms"]["n"] > 0
    assert result["interactive_regret"]["linucb"] < result["interactive_regret"]["linucb.frozen_control"]
    assert (out / "recsys.png").is_file()
