"""What another suggestion gate would have served on logged code-completion runs — exactly.

Every candidate the agent considered (the model with its context, the model without it, the nearest
example) is logged with its features, the right line arrives as a correction on every request, and no
learner but the gate depends on what was served (context is judged by the model's own answer). So a
fresh gate replayed over a run's log makes exactly the choices it would have made live, and its accept
rate, accepted completions and characters saved are measured, not estimated.

    python -m lifelong.bench.replay_gate runs/bench/code-completion-logs --objective keep
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lifelong.experience import ExperienceLog, Interaction, Step
from lifelong.learners.context.gate import GATE, SuggestionGate, same_answer

PLAIN_ANSWER = "plain_answer"


def with_plain_flag(step: Step) -> Step:
    """Mark the model candidate that equals the plain answer (logs written before the flag existed)."""
    metadata = step.interaction.metadata
    plain = metadata.get(PLAIN_ANSWER)
    rows = [dict(row, features=dict(row["features"])) for row in metadata.get(GATE) or []]
    for row in rows:
        if "model" in row["features"] and plain is not None and same_answer(row["action"], plain):
            row["features"]["agrees_with_plain"] = 1.0
    i = step.interaction
    patched = Interaction(
        i.scope, i.observation, i.action, id=i.id, time=i.time, metadata={**metadata, GATE: rows}
    )
    return Step(patched, step.feedback)


def replay(path: Path, objective: str) -> dict[str, float | str]:
    gate = SuggestionGate(objective=objective)
    suggested = accepted = chars = 0
    n = 0
    for step in ExperienceLog(path).replay():
        step = with_plain_flag(step)
        truth = step.correction
        rows = step.interaction.metadata.get(GATE) or []
        action, _ = gate.choose([(row["action"], row["features"]) for row in rows])
        n += 1
        if action is not None:
            suggested += 1
            if same_answer(action, truth):
                accepted += 1
                chars += len(str(truth).strip())
        gate.learn(step)
    return {
        "requests": n,
        "accept_rate": accepted / max(1, suggested),
        "right_rate": accepted / max(1, n),
        "suggestion_rate": suggested / max(1, n),
        "chars_saved": chars,
        "trusted_source": gate.trusted_source(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path, help="a bench's code-completion-logs folder")
    parser.add_argument("--objective", default="keep", choices=("keep", "reward", "chars"))
    args = parser.parse_args()
    rows = {p.name: replay(p, args.objective) for p in sorted(args.logs.glob("learner-order*.db"))}
    for name, row in rows.items():
        print(name, json.dumps(row))
    for key in ("accept_rate", "right_rate", "suggestion_rate", "chars_saved"):
        values = [float(r[key]) for r in rows.values()]
        print(f"{key}: {np.mean(values):.4f} ± {np.std(values):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
