"""``lifelong bench crafter``: the new-game protocol on Crafter (:mod:`lifelong.eval.new_game`).

Variants, all on the same world seeds (one stream of fresh worlds per run seed):

- ``learning`` — the skill agent (model-free proposer, automatic curriculum, self-verification, skill
  library and effect lessons carried across episodes);
- ``frozen`` — the same agent with nothing kept between episodes (it still learns inside an episode);
- ``random`` — uniformly random actions;
- ``no_library`` — lessons carried, skills not (every program re-written each episode);
- ``no_curriculum`` — tasks drawn at random instead of the frontier;
- ``no_verification`` — every program that ran without an error is kept and served, no critic, no gate;
- ``llm`` — the language-model proposer (the embedded Gemma 3 270M, or ``--model-url``) in place of the
  model-free one; slow on 2 cores, so it plays ``--llm-episodes`` episodes of the first seed only.

Then transfer: the final state of ``learning`` and an empty agent are each posed the 22 achievements in
new worlds. ``--steps`` is the episode length (Crafter's own is 10,000; deaths end most episodes far
earlier). The replay check rebuilds the first learning agent's library and lessons from its log.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from lifelong.agents.skills import SkillAgent
from lifelong.envs.crafter import ACHIEVEMENTS
from lifelong.errors import InvalidInput
from lifelong.eval.new_game import new_game
from lifelong.eval.result import Result
from lifelong.experience.log import ExperienceLog
from lifelong.learners.skills.curriculum import RandomCurriculum
from lifelong.learners.skills.library import SkillLibrary
from lifelong.learners.skills.proposers import LLMProposer
from lifelong.models.embedders import default_embedder
from lifelong.state.codec import digest

#: Attempts (language-model calls) per episode of the llm variant: its failed programs spend no steps.
LLM_CALLS = 12

VARIANTS = ("learning", "frozen", "random", "no_library", "no_curriculum", "no_verification", "llm")

#: Published Crafter scores (%, the geometric-mean metric) and BALROG's LLM progress (%), for the report.
ANCHORS = {
    "random": 1.6,
    "ppo_1m": 4.6,
    "rainbow_1m": 4.3,
    "dreamerv2": 10.0,
    "dreamerv3": 14.5,
    "spring_gpt4": 27.3,
    "human_experts": 50.5,
    "balrog_llama_3_2_1b_progress": 12.7,
    "balrog_gpt_4o_progress": 33.1,
}


def crafter(args: argparse.Namespace) -> Result:
    seeds = list(range(args.seeds))
    episodes = getattr(args, "episodes", None) or 30
    steps = args.steps or 10_000
    variants = _variants(getattr(args, "variants", None))
    llm_episodes = getattr(args, "llm_episodes", None) or 1
    model_url = getattr(args, "model_url", None)
    embedder = default_embedder()
    logs = Path(args.out) / "crafter-logs"
    logs.mkdir(parents=True, exist_ok=True)
    agents: dict[tuple[str, int], SkillAgent] = {}
    model: Any = None

    def make_agent(variant: str, seed: int) -> SkillAgent:
        nonlocal model
        path = logs / f"{variant}-{seed}-{time.time_ns()}.db"
        kw: dict[str, Any] = {}
        if variant == "llm":
            if model is None:
                model = _model(model_url)
            kw["proposer"] = LLMProposer(model)
            kw["max_decisions"] = LLM_CALLS
        if variant == "no_curriculum":
            kw["curriculum"] = RandomCurriculum()
        verify = variant != "no_verification"
        agent = SkillAgent(
            ExperienceLog(path),
            make_library=lambda: SkillLibrary(embedder, verify=verify),
            carry=variant != "frozen",
            keep_library=variant != "no_library",
            verify=verify,
            tenant=f"crafter-{seed}",
            **kw,
        )
        agents.setdefault((variant, seed), agent)
        return agent

    started = time.perf_counter()
    result = new_game(
        make_agent,
        variants,
        seeds=seeds,
        episodes=episodes,
        steps=steps,
        transfer=("learning",) if "learning" in variants else (),
        transfer_steps=getattr(args, "transfer_steps", None) or 500,
        episodes_of={"llm": llm_episodes},
        seeds_of={"llm": seeds[:1]},
        progress=lambda line: print("  " + line, flush=True) if getattr(args, "verbose", True) else None,
    )
    result.name = "crafter"
    result.config.update(
        {
            "variants": list(variants),
            "proposer": {"learning": "model-free", "llm": "llm:" + (model_url or "gemma-3-270m (llama.cpp)")},
            "achievements": list(ACHIEVEMENTS),
            "llm_episodes": llm_episodes,
        }
    )
    result.extra["anchors"] = ANCHORS
    first = agents.get(("learning", seeds[0]))
    if first is not None:
        library, lessons = first.rebuild()
        result.extra["replay"] = {
            "library_digest_equal": digest(library.state_dict()) == digest(first.library.state_dict()),
            "lessons_digest_equal": digest(lessons.state_dict()) == digest(first.lessons.state_dict()),
            "interactions": len(first.log),
        }
    for agent in agents.values():
        agent.log.close()
    result.timings["total_s"] = time.perf_counter() - started
    return result


def _variants(text: str | None) -> tuple[str, ...]:
    if not text:
        return VARIANTS
    names = tuple(n.strip() for n in text.split(","))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise InvalidInput(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}", field="variants")
    return names


def _model(url: str | None) -> Any:
    if url:
        from lifelong.models.openai_compat import OpenAICompatible

        return OpenAICompatible(url)
    from lifelong.models.llama_cpp import LlamaCpp

    return LlamaCpp()
