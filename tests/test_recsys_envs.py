"""Recommendation environments: the MovieLens loader and the simulated user population."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lifelong.envs.recsys import SimulatedUsers, load_movielens
from lifelong.errors import InvalidInput, NotFound

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"


@pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"MovieLens 100K not found in {ML100K}")
def test_movielens_loads_in_time_order() -> None:
    data = load_movielens(ML100K)
    assert len(data) == 100_000 and data.n_users == 943 and data.n_items == 1682
    assert np.all(np.diff(data.time) >= 0)
    assert set(np.unique(data.rating)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert data.titles[1] == "Toy Story (1995)" and data.genres[1].sum() == 3
    assert data.age[1] == 24 and data.gender[1] == "M" and data.occupation[1] == "technician"


def copy_movielens(tmp_path: Path) -> Path:
    folder = tmp_path / "ml"
    folder.mkdir()
    for name in ("u.item", "u.user"):
        (folder / name).write_bytes((ML100K / name).read_bytes())
    (folder / "u.data").write_text("1\t1\t5\t100\n2\t3\t4\t50\n")
    return folder


@pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"MovieLens 100K not found in {ML100K}")
def test_malformed_files_give_clear_errors(tmp_path: Path) -> None:
    folder = copy_movielens(tmp_path)
    small = load_movielens(folder)
    assert small.user.tolist() == [2, 1]  # sorted by time
    (folder / "u.data").write_text("1\t1\t5\t100\n1 1 five 100\n")
    with pytest.raises(InvalidInput, match="line 2"):
        load_movielens(folder)
    (folder / "u.data").write_text("1\t1\t9\t100\n")
    with pytest.raises(InvalidInput, match="out of range"):
        load_movielens(folder)
    (folder / "u.data").write_text("1\t99999\t4\t100\n")
    with pytest.raises(InvalidInput, match="do not list"):
        load_movielens(folder)
    (folder / "u.user").unlink()
    with pytest.raises(NotFound, match="MovieLens"):
        load_movielens(folder)
    with pytest.raises(NotFound):
        load_movielens(tmp_path / "nowhere")


def test_simulated_users_are_reproducible_and_report_regret_info() -> None:
    env = SimulatedUsers(n_users=10, n_items=20, horizon=50, seed=3)
    first, info = env.reset(seed=7)
    assert first["items"] == 20 and info["scope"].user == f"u{first['user']}"
    rewards, bests = [], []
    done = False
    while not done:
        _, reward, done, _, info = env.step(0)
        rewards.append(reward)
        bests.append(info["best_reward"])
        assert 0 <= info["expected_reward"] <= info["best_reward"] <= 1
        assert info["accepted"] == (reward == 1.0)
    again = SimulatedUsers(n_users=10, n_items=20, horizon=50, seed=3)
    again.reset(seed=7)
    assert [again.step(0)[1] for _ in range(50)] == rewards
    with pytest.raises(InvalidInput):
        env.step(0)  # the episode has ended
    env.reset(seed=1)
    with pytest.raises(InvalidInput):
        env.step(20)
    # the oracle (each user's best item) earns exactly the best reward in expectation
    oracle = env.click_probability.argmax(axis=1)
    obs, _ = env.reset(seed=2)
    for _ in range(20):
        obs, _, _, _, info = env.step(int(oracle[obs["user"]]))
        assert info["expected_reward"] == info["best_reward"]


@pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"MovieLens 100K not found in {ML100K}")
def test_prequential_replay_on_movielens() -> None:
    from lifelong.eval.recsys import replay
    from lifelong.learners import Popularity, StreamingFactorization

    data = load_movielens(ML100K)
    learning = replay(StreamingFactorization(dim=8), data, n_events=4000).summary()
    warm = StreamingFactorization(dim=8)
    replay(warm, data, n_events=500)
    frozen = replay(warm.freeze(), data, n_events=4000).summary()
    assert learning["rmse"] < frozen["rmse"]  # the same stream, with and without learning after 500 events
    popularity = replay(Popularity(), data, n_events=4000, predicts_ratings=False).summary()
    assert 0 < popularity["hr_at_k"] < 1 and 0 < popularity["ndcg_at_k"] <= popularity["hr_at_k"]
    assert np.isnan(popularity["rmse"]) and learning["events_per_second"] > 1000
