"""``lifelong demo``: the main job, until the flagship (the code-completion agent) exists.

An online intent learner works through a stream of real customer-service queries (BANKING77). Every
interaction and its feedback goes to the experience log first; the learner learns from each correction
at once; its frozen control (the same learner, frozen after a short warm-up) runs on the same orders.
At the end the demo snapshots the learned state into a version store next to the log, promotes it,
checks that replaying the log into a fresh learner rebuilds exactly the same state, and writes the
learning curves (PNG + JSON).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lifelong.envs.intent_stream import IntentStream, accuracy_probe
from lifelong.errors import InvalidInput
from lifelong.eval import prequential
from lifelong.experience import ExperienceLog, Scope, new_id
from lifelong.learners import Learner, OnlineSoftmax
from lifelong.state import VersionStore, digest

WARMUP = 500


def run_demo(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.seeds < 1:
        raise InvalidInput("--steps and --seeds must be >= 1", field="--steps")
    out = Path(args.out)
    train = IntentStream.banking77(args.data, limit=args.steps)  # fails early if the data is missing
    test = IntentStream.banking77(args.data, split="test")
    out.mkdir(parents=True, exist_ok=True)
    log_url = args.log or str(out / "experience.db")
    log = ExperienceLog(log_url)
    seeds = list(range(args.seeds))
    run_id = time.strftime("run-%Y%m%dT%H%M%S-") + new_id()[:6]  # several runs can share one log

    def make_env(seed: int) -> IntentStream:
        return IntentStream(
            train.texts,
            train.labels,
            limit=args.steps,
            scope=Scope(tenant="banking77", user="demo", session=f"{run_id}/order-{seed}"),
        )

    learners: dict[int, Learner] = {}

    def make_learner(seed: int) -> Learner:
        learner = OnlineSoftmax()
        learners.setdefault(seed, learner)  # the first one built for a seed is the learning one
        return learner

    print(
        f"lifelong demo: {args.seeds} stream order(s) x {min(args.steps, len(train.texts))} BANKING77 "
        f"queries; frozen control after {WARMUP} warm-up steps; log: {log_url}"
    )
    result = prequential(
        make_learner,
        make_env,
        seeds,
        warmup=WARMUP,
        window=max(50, min(250, args.steps // 10)),
        log=log,
        probe=accuracy_probe(test.texts, test.labels),
        name="demo: BANKING77 intent stream",
    )

    # Version the learned state of the first order, and show the log is the truth: replaying it
    # into a fresh learner rebuilds the same state, bit for bit.
    learner = learners[seeds[0]]
    store = VersionStore(log_url)
    version = store.commit(learner, message="demo run", metrics={"probe": result.metric_mean("probe")})
    store.promote(learner.name, version.version)
    rebuilt = OnlineSoftmax()
    rebuilt.learn_many(log.replay(make_env(seeds[0]).scope))
    same = digest(rebuilt.state_dict()) == digest(learner.state_dict())
    result.config["replay_rebuilds_same_state"] = same
    json_path, png_path = result.save(out, "demo")

    print(result.summary())
    stats = log.stats()
    print(f"log: {stats.interactions} interactions, {stats.feedback} feedback in {log_url}")
    print(f"state: {learner.name} version {version.version} promoted (digest {version.digest[:12]})")
    print(f"replay of the log rebuilds the same state: {'yes' if same else 'NO'}")
    print(f"curves: {png_path}\nresult: {json_path}")
    log.close()
    store.close()
    return 0 if same else 1
