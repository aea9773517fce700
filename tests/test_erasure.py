"""Forgetting a user end to end: events out of the log, rows out of the learners, shared state rebuilt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lifelong.errors import InvalidInput
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners import ImplicitFactorization, Popularity, StreamingFactorization
from lifelong.state import digest
from lifelong.state.erasure import forget_user, rebuild


def rated(user: str, item: str, rating: float, t: float) -> Step:
    x = Interaction(Scope(tenant="shop", user=user), {"user": user, "item": item}, None, time=t)
    return Step(x, (Feedback.rating(x.id, rating, time=t),))


def test_forget_user_deletes_events_drops_rows_and_rebuilds(log_url: str) -> None:
    def make_mf() -> StreamingFactorization:
        return StreamingFactorization(dim=4, seed=3)

    steps = [
        rated(user, f"i{(n * 7 + len(user)) % 9}", 1.0 + n % 5, float(n))
        for n in range(60)
        for user in ("ada", "bob", "cy")
    ]
    steps.sort(key=lambda s: s.interaction.time)
    learners = {"mf": make_mf(), "ranker": ImplicitFactorization(dim=4), "popularity": Popularity()}
    with ExperienceLog(log_url) as log:
        for step in steps:
            log.append_many([step.interaction, *step.feedback])
            for learner in learners.values():
                learner.learn(step)
        report = forget_user("bob", log=log, learners=learners, tenant="shop", rebuild_with={"mf": make_mf})
        assert (report.interactions_deleted, report.feedback_deleted) == (60, 60)
        assert sorted(report.rows_dropped) == ["mf", "ranker"]  # popularity keeps no per-user row
        assert learners["mf"].users.get("bob") is None and learners["ranker"].users.get("bob") is None
        assert list(log.replay(Scope(tenant="shop", user="bob"))) == []
        # Not rebuilt: the implicit ranker's item rows and the popularity counts still carry bob.
        assert sorted(report.residual) == ["popularity", "ranker"] and not report.clean
        # Rebuilt = a learner that never saw bob; the in-place one still differs in shared rows.
        without_bob = make_mf()
        without_bob.learn_many(s for s in steps if s.interaction.scope.user != "bob")
        assert digest(report.rebuilt["mf"].state_dict()) == digest(without_bob.state_dict())
        assert digest(learners["mf"].state_dict()) != digest(without_bob.state_dict())
        assert digest(rebuild(make_mf, log).state_dict()) == digest(without_bob.state_dict())
        with pytest.raises(InvalidInput, match="rebuild"):
            forget_user("ada", log=log, learners=learners, tenant="shop", rebuild_with={"nope": make_mf})
        partial = forget_user("ada", log=log, learners=learners, tenant="shop")
        assert not partial.clean and partial.interactions_deleted == 60


def test_the_erasure_scan_leaves_this_process_seeing_other_processes_writes(tmp_path: Path) -> None:
    """The scan reads the SQLite files raw; closing a descriptor of them would drop this process's POSIX
    locks, let another process delete the WAL on its way out, and leave this process's connections
    reading a database that no longer changes (found by the service's tests)."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = ExperienceLog(url)
    i = Interaction(Scope("t", user="ada"), "ada's request text")
    log.append_many([i, Feedback.accept(i.id)])
    other = Interaction(Scope("t", user="bo"), "bo's request")
    log.append(other)
    from lifelong.state.erasure import forget

    assert forget(Scope("t", user="ada"), log=log).clean  # the scan reads log.db and its WAL raw
    writer = (
        "import sys; from lifelong.experience import ExperienceLog, Interaction, Scope\n"
        "log = ExperienceLog(sys.argv[1]); log.append(Interaction(Scope('t', user=f'u{sys.argv[2]}'), 'x'))\n"
        "log.close()\n"
    )
    for n in range(3):  # each writer opens, appends and closes: "the last connection" if locks were lost
        subprocess.run([sys.executable, "-c", writer, url, str(n)], check=True)
        assert log.stats().users == 2 + n, "this process no longer sees the other processes' appends"
    log.close()
