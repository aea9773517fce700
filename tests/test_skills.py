"""The skill agent on Crafter: the language wrapper, the loop, the library's stages, replay and erasure."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from lifelong.agents.skills import GATE_SEED_BASE, SkillAgent, library_gate
from lifelong.envs.crafter import ACHIEVEMENTS, CrafterText, Primitives
from lifelong.errors import InvalidInput
from lifelong.eval.new_game import crafter_score, milestones, success_rates
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners.skills.curriculum import AutoCurriculum, FixedCurriculum, RandomCurriculum, State
from lifelong.learners.skills.effects import EffectLessons
from lifelong.learners.skills.library import GATE, SkillLibrary
from lifelong.learners.skills.proposers import Context, ModelFreeProposer, Proposal
from lifelong.learners.skills.sandbox import Sandbox
from lifelong.models import HashingEmbedder
from lifelong.state import VersionStore
from lifelong.state.codec import digest

EMBED = HashingEmbedder()


def make_agent(log: ExperienceLog | None = None, **kw: Any) -> SkillAgent:
    verify = kw.get("verify", True)
    return SkillAgent(
        log or ExperienceLog(":memory:"), make_library=lambda: SkillLibrary(EMBED, verify=verify), **kw
    )


@pytest.fixture(scope="module")
def played() -> SkillAgent:
    """A learning agent after four short episodes (fixed seeds)."""
    agent = make_agent(tenant="crafter")
    for episode in range(4):
        agent.play(100 + episode, episode=episode, steps=600)
    return agent


# ---------------------------------------------------------------------- the wrapper


def test_the_text_matches_the_world() -> None:
    env = CrafterText(length=200)
    text, info = env.reset(seed=3)
    x, y = info["pos"]
    listed = re.findall(r"^- (\w+) at \(([+-]\d+), ([+-]\d+)\), (\d+) steps away; (\d+) in view", text, re.M)
    assert listed, text
    for name, dx, dy, far, count in listed:
        assert env.cell((x + int(dx), y + int(dy))) == name
        assert int(far) == abs(int(dx)) + abs(int(dy))
        assert int(count) == sum(1 for n, _, _ in env.view() if n == name)
    assert f"Facing: {env.facing_name()}." in text
    assert "Vitals: health 9/9, food 9/9, drink 9/9, energy 9/9." in text
    # the same seed, the same world; another seed, another one
    assert CrafterText(length=200).reset(seed=3)[0] == text
    assert CrafterText(length=200).reset(seed=4)[0] != text


def test_feedback_says_what_an_action_did_and_why_not() -> None:
    env = CrafterText(length=300)
    env.reset(seed=3)
    _, _, _, _, info = env.step("make_wood_pickaxe")
    assert info["feedback"]["missing"] == {"nearby": ["table"], "items": {"wood": 1}}
    assert "needs a nearby table and 1 wood (have 0)" in env.describe()
    api = Primitives(env, np.random.default_rng(0))
    api.run_budget(200)
    assert api.approach("tree")
    note = api.act("do")
    assert "wood +1" in note and env.inventory()["wood"] == 1
    assert "collect_wood" in env.unlocked
    with pytest.raises(InvalidInput):
        env.step("fly")


def test_the_api_spends_a_budget_and_never_walks_into_lava() -> None:
    env = CrafterText(length=1000)
    env.reset(seed=3)
    api = Primitives(env, np.random.default_rng(0))
    api.run_budget(5)
    with pytest.raises(BaseException, match="step budget"):
        api.explore(50)
    assert env.steps == 5


# ---------------------------------------------------------------------- the loop and what it learns


def test_the_learning_agent_beats_its_frozen_control() -> None:
    """Fixed seeds: after a few episodes the agent that keeps its skills and lessons unlocks more."""
    counts = {}
    for carry in (True, False):
        agent = make_agent(carry=carry)
        counts[carry] = [len(agent.play(100 + ep, episode=ep, steps=600).unlocked) for ep in range(6)]
    learning, frozen = np.mean(counts[True][3:]), np.mean(counts[False][3:])
    assert learning >= frozen + 3, counts  # measured 12.7 vs 5.3 on these seeds


def test_every_attempt_is_logged_with_its_verdict(played: SkillAgent) -> None:
    steps = list(played.log.replay())
    sessions = {s.interaction.scope.session for s in steps}
    assert {"episode-0", "episode-3"} <= sessions
    for step in steps:
        verdict = next(f.value for f in step.feedback if f.kind == "outcome")
        assert isinstance(verdict["success"], bool) and "events" in verdict
        assert step.interaction.action["code"].startswith("def ")


def test_replaying_the_log_rebuilds_library_and_lessons(played: SkillAgent) -> None:
    library, lessons = played.rebuild()
    assert digest(library.state_dict()) == digest(played.library.state_dict())
    assert digest(lessons.state_dict()) == digest(played.lessons.state_dict())
    assert any(i.payload["stage"] == "promoted" for i in played.library.items.values())


def test_a_verified_skill_runs_again_in_a_fresh_world_of_the_same_seed(played: SkillAgent) -> None:
    scope = Scope("crafter", user="agent")
    skill = played.library.for_task("collect_wood", scope)
    assert skill is not None and skill.payload["stage"] == "promoted"
    logged = {s.interaction.id: s.interaction for s in played.log.replay()}
    gate = next(logged[s] for s in skill.sources if GATE in logged[s].metadata)
    seed = gate.metadata["world_seed"]
    assert seed >= GATE_SEED_BASE  # verified in a world no episode played
    for _ in range(2):  # the same seed twice: the same world, the same success
        env = CrafterText(length=400)
        env.reset(seed=seed)
        api = Primitives(env, np.random.default_rng(seed))
        api.run_budget(400)
        run = Sandbox().run(str(skill.payload["code"]), "collect_wood", api.functions())
        assert run.ok, run.error
        assert "collect_wood" in env.unlocked


def test_every_skill_records_where_it_came_from(played: SkillAgent) -> None:
    logged = {s.interaction.id: s for s in played.log.replay()}
    for item in played.library.items.values():
        created = logged[item.sources[0]]
        assert created.interaction.action["code"] == item.payload["code"]
        if item.payload["stage"] == "promoted":
            assert any(GATE in logged[s].interaction.metadata for s in item.sources[1:])


def test_forgetting_an_episode_removes_what_it_alone_produced() -> None:
    agent = make_agent(tenant="crafter")
    for episode in range(3):
        agent.play(100 + episode, episode=episode, steps=600)
    by_session: dict[str, set[str]] = {}
    logged = {s.interaction.id: s.interaction.scope.session for s in agent.log.replay()}
    for item in agent.library.items.values():
        by_session.setdefault(str(logged[item.sources[0]]), set()).add(item.id)
    victim = next(s for s in ("episode-1", "episode-2", "episode-0") if by_session.get(s))
    kept = {i for s, ids in by_session.items() if s != victim for i in ids}
    dropped = agent.forget(Scope("crafter", user="agent", session=victim))
    assert set(dropped) >= by_session[victim]
    assert not by_session[victim] & set(agent.library.items)
    assert all(s.interaction.scope.session != victim for s in agent.log.replay())
    survivors = kept & set(agent.library.items)
    assert survivors or not kept  # skills of other episodes stay (unless built on the forgotten one)


def test_a_skill_that_breaks_the_rules_fails_and_the_episode_goes_on() -> None:
    bad = [
        "def {n}():\n    import os\n    return os.system('true')\n",
        "def {n}():\n    return ().__class__.__bases__\n",
        "def {n}():\n    return 1 / 0\n",
        "def {n}():\n    while True:\n        pass\n",
        "def {n}():\n    open('/tmp/lifelong-skill-escape', 'w')\n",
    ]

    class Hostile(ModelFreeProposer):
        """Writes the hostile programs first, then proposes as usual (a proposer is user code too)."""

        def propose(self, ctx: Context) -> Proposal:
            if bad:
                name = ctx.task if ctx.task.isidentifier() else "explore_world"
                return Proposal(ctx.task, name, bad.pop(0).format(n=name), "hostile", "llm")
            return super().propose(ctx)

    agent = make_agent(proposer=Hostile(), sandbox=Sandbox(max_lines=20_000, timeout_s=2.0))
    report = agent.play(100, episode=0, steps=400)
    hostile = [e for e in report.errors if "Hurt" not in e and "OutOfSteps" not in e][:5]
    assert "ImportError: imports are not allowed (line 2)" in hostile[0]
    assert "SkillRejected" in hostile[1] and "__bases__" in hostile[1]
    assert "ZeroDivisionError: division by zero (line 2)" in hostile[2]
    assert "BudgetExceeded" in hostile[3]
    assert "open" in hostile[4]
    assert report.steps > 50 and report.unlocked  # it went on playing
    import os

    assert not os.path.exists("/tmp/lifelong-skill-escape")


# ---------------------------------------------------------------------- stages, gate, versions


def _attempt(
    scope: Scope,
    task: str,
    code: str,
    success: bool,
    *,
    metadata: dict[str, Any] | None = None,
    source: str = "synthesised",
    item: str | None = None,
) -> Step:
    action: dict[str, Any] = {
        "skill": task,
        "task": task,
        "code": code,
        "description": task,
        "source": source,
    }
    if item is not None:
        action["item"] = item
    i = Interaction(scope, {"query": task, "task": task}, action, metadata=metadata or {})
    return Step(i, (Feedback.outcome(i.id, {"success": success, "error": None, "events": []}),))


def test_candidates_and_gated_out_skills_are_never_retrieved() -> None:
    library = SkillLibrary(EMBED, gate_fails=2)
    scope = Scope("t", user="agent", session="episode-0")
    code = "def collect_wood():\n    act('do')\n    return True\n"
    made = _attempt(scope, "collect_wood", code, True)
    library.learn(made)
    item_id = f"{made.interaction.id}/SkillLibrary/0"
    assert library.retrieve("collect wood", scope) == []  # a candidate: this episode may call it, nobody else
    assert "collect_wood" in library.skills(scope, session="episode-0")
    assert "collect_wood" not in library.skills(scope, session="episode-1")
    for _ in range(2):
        library.learn(
            _attempt(
                Scope("t", user="agent", session="gate-0"),
                "collect_wood",
                code,
                False,
                metadata={GATE: item_id},
            )
        )
    assert library.items[item_id].payload["stage"] == "rejected"
    assert library.retrieve("collect wood", scope) == []
    assert library.skills(scope, session="episode-0") == {}


def test_a_repair_replaces_a_skill_only_once_it_is_verified() -> None:
    library = SkillLibrary(EMBED)
    scope = Scope("t", user="agent", session="episode-0")
    old, new = (
        "def eat_cow():\n    act('do')\n    return True\n",
        "def eat_cow():\n    approach('cow')\n    act('do')\n    return True\n",
    )
    first = _attempt(scope, "eat_cow", old, True)
    library.learn(first)
    library.learn(
        _attempt(scope, "eat_cow", old, True, metadata={GATE: f"{first.interaction.id}/SkillLibrary/0"})
    )
    later = Scope("t", user="agent", session="episode-1")
    repair = _attempt(later, "eat_cow", new, True)
    library.learn(repair)
    assert [r.item.payload["code"] for r in library.retrieve("eat cow", later)] == [old]
    library.learn(
        _attempt(later, "eat_cow", new, True, metadata={GATE: f"{repair.interaction.id}/SkillLibrary/0"})
    )
    assert [r.item.payload["code"] for r in library.retrieve("eat cow", later)] == [new]
    assert [i.payload["code"] for i in library.history(later)] == [old]


def test_the_version_store_serves_only_verified_libraries_and_rolls_back(tmp_path: Any) -> None:
    store = VersionStore(tmp_path / "versions.db")
    agent = make_agent(store=store, tenant="crafter")
    agent.play(100, episode=0, steps=600)
    agent.play(101, episode=1, steps=600)
    name = agent.library.name
    served = store.promoted(name)
    assert served is not None and served.version == 2
    assert all(h["action"] in ("commit", "promote") for h in store.history(name))
    # a library that would serve an unverified skill does not pass the gate
    unverified = SkillLibrary(EMBED, verify=False)
    unverified.learn(
        _attempt(
            Scope("crafter", user="agent", session="x"),
            "collect_wood",
            "def collect_wood():\n    return True\n",
            True,
        )
    )
    assert not library_gate(unverified.state_dict(), None).passed
    # roll back: the library of episode 0 comes back
    store.rollback(name)
    restored = SkillLibrary(EMBED)
    store.restore(restored, store.promoted(name).version)  # type: ignore[union-attr]
    assert digest(restored.state_dict()) == digest(store.state(name, 1))


# ---------------------------------------------------------------------- curricula, proposers, metrics


def _state(**kw: Any) -> State:
    base: dict[str, Any] = {
        "tasks": ACHIEVEMENTS,
        "tenant": "t",
        "lessons": EffectLessons(),
        "skills": set(),
        "unlocked": set(),
    }
    return State(**{**base, **kw})


def test_the_curricula() -> None:
    assert FixedCurriculum().propose(_state(unlocked={"collect_coal"})) == "collect_diamond"
    rng = np.random.default_rng(0)
    drawn = {RandomCurriculum().propose(_state(rng=rng)) for _ in range(200)}
    assert len(drawn) > 15
    # the automatic one answers a threat first, then prefers what it can do
    lessons = EffectLessons()
    i = Interaction(Scope("t"), {"query": "x"}, {})
    lessons.learn(
        Step(
            i,
            (
                Feedback.outcome(
                    i.id,
                    {
                        "events": [
                            {
                                "action": "do",
                                "target": "tree",
                                "changes": {"wood": 1},
                                "made": "grass",
                                "unlocked": ["collect_wood"],
                            },
                            {
                                "action": "do",
                                "target": "zombie",
                                "changes": {},
                                "made": "grass",
                                "unlocked": ["defeat_zombie"],
                            },
                        ]
                    },
                ),
            ),
        )
    )
    auto = AutoCurriculum()
    assert auto.propose(_state(lessons=lessons, seen={"tree"})) == "collect_wood"
    assert auto.propose(_state(lessons=lessons, seen={"tree"}, threat="zombie")) == "defeat_zombie"


def test_the_model_free_proposer_turns_a_missing_table_into_a_sub_goal() -> None:
    lessons = EffectLessons()
    i = Interaction(Scope("t"), {"query": "x"}, {})
    lessons.learn(
        Step(
            i,
            (
                Feedback.outcome(
                    i.id,
                    {
                        "events": [
                            {
                                "action": "make_wood_pickaxe",
                                "target": "grass",
                                "changes": {},
                                "made": None,
                                "unlocked": [],
                                "missing": {"nearby": ["table"], "items": {"wood": 1}},
                            },
                            {
                                "action": "place_table",
                                "target": "grass",
                                "changes": {"wood": -1},
                                "made": "table",
                                "unlocked": ["place_table"],
                            },
                        ]
                    },
                ),
            ),
        )
    )
    ctx = Context(
        "make_wood_pickaxe",
        Scope("t"),
        lessons,
        {},
        [],
        ("make_wood_pickaxe", "place_table", "do"),
        ("table", "tree"),
        ["tree"],
        ("grass",),
    )
    proposal = ModelFreeProposer().propose(ctx)
    assert proposal.subgoal == "place_table"


def test_crafter_score_and_milestones() -> None:
    assert crafter_score([0.0] * 22) == 0.0
    assert crafter_score([100.0] * 22) == pytest.approx(100.0)
    assert crafter_score([100.0] + [0.0] * 21) == pytest.approx(np.exp(np.log(101) / 22) - 1)
    with pytest.raises(InvalidInput):
        crafter_score([120.0])
    episodes = [
        {"unlocked": ["collect_wood"], "steps": 100},
        {"unlocked": ["make_wood_pickaxe"], "steps": 50, "unlocked_at": {"make_wood_pickaxe": 40}},
    ]
    found = milestones(episodes)
    assert found["wood_pickaxe"] == {"episode": 2, "env_steps": 140}
    assert found["diamond"] == {"episode": None, "env_steps": None}
    assert success_rates([["collect_wood"], []])["collect_wood"] == 50.0


def test_the_docs_example_runs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/skills.md "Run it", shortened (two episodes of 300 steps) and with the hashing embedder."""
    import pathlib

    text = (pathlib.Path(__file__).parent.parent / "docs" / "skills.md").read_text()
    code = text.split("## Run it", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = code.replace("range(3)", "range(2)").replace("steps=500", "steps=300")
    code = code.replace(
        'SkillAgent(ExperienceLog("crafter.db"))',
        'SkillAgent(ExperienceLog("crafter.db"), make_library=lambda: SkillLibrary(EMBED))',
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"SkillLibrary": SkillLibrary, "EMBED": EMBED}
    exec(compile(code, "docs/skills.md", "exec"), namespace)
    agent = namespace["agent"]
    assert digest(namespace["library"].state_dict()) == digest(agent.library.state_dict())
    assert (tmp_path / "crafter.db").exists()
