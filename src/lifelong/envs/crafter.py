"""Crafter in words: a language wrapper and the primitive API skills are written against.

Crafter (Hafner, "Benchmarking the Spectrum of Agent Capabilities", ICLR 2022; PyPI ``crafter``) is a
2-D Minecraft: a 64×64 procedurally generated world, 17 actions and 22 achievements on a tech tree
(wood → table → wood pickaxe → stone → stone pickaxe → coal / iron → furnace → iron pickaxe → diamond,
with food, water, sleep and combat beside it). :class:`CrafterText` turns it into what Voyager's loop
reads (Wang et al. 2023, §2.2): a text description of the local view (what is where, relative to the
agent), the inventory and vitals, the achievements unlocked so far, and a note of what the last action
did or *why it had no effect* — the environment feedback an iterative prompting loop refines with. The
reasons come from Crafter's own rule table (``crafter.constants``), as Minecraft's crafting table tells
a player what an item needs; nothing here knows which achievement needs what.

:class:`Primitives` is the API a skill program sees: perception (``nearest``, ``near``, ``facing``,
``inventory``, ``count``), movement (``approach`` a thing by breadth-first search over the cells seen this
episode, ``explore`` toward the unseen, ``face``) and the 17 actions (``act``). There are no
achievement-specific routines: "collect wood" and "make a stone pickaxe" are *learned* skills
(:mod:`lifelong.learners.skills`). Every call spends environment steps from a budget; when the budget or
the episode runs out the call raises :class:`OutOfSteps`, which skill code cannot catch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.envs.base import Env, StepResult
from lifelong.errors import InvalidInput
from lifelong.utils.validation import check_scalar

try:  # an install-time dependency; the message says what to do if it is missing
    import crafter
    from crafter import constants as rules
    from crafter import objects as creatures
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError("lifelong.envs.crafter needs the crafter package: pip install crafter") from exc

ACTIONS: tuple[str, ...] = tuple(rules.actions)
ACHIEVEMENTS: tuple[str, ...] = tuple(rules.achievements)
MATERIALS: tuple[str, ...] = tuple(rules.materials)
CREATURES: tuple[str, ...] = ("cow", "zombie", "skeleton", "arrow", "plant")
WALKABLE: frozenset[str] = frozenset(rules.walkable)  # lava is walkable in Crafter, and deadly: never here
VITALS: tuple[str, ...] = ("health", "food", "drink", "energy")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_MOVE_OF = {offset: f"move_{name}" for name, offset in DIRECTIONS.items()}
#: Tech-tree milestones (Voyager's Table 1 for Crafter): the achievement that marks each.
MILESTONES: dict[str, str] = {
    "wood_pickaxe": "make_wood_pickaxe",
    "stone_pickaxe": "make_stone_pickaxe",
    "iron_pickaxe": "make_iron_pickaxe",
    "diamond": "collect_diamond",
}
UNKNOWN = -1


class Hurt(BaseException):
    """A creature hurt the agent: the running skill stops so the agent can answer the threat."""


class OutOfSteps(BaseException):
    """The skill's step budget or the episode ran out."""


class _Quiet(crafter.Env):  # type: ignore[misc]
    """Crafter without the image rendering (the text wrapper never reads pixels: ~15% faster steps),
    and reproducible: Crafter keeps each chunk's creatures in a ``set`` and despawns
    ``creatures[random index]`` of it, so which one goes depended on memory addresses and the same seed
    played differently from run to run. Handing the balancer the creatures in a fixed order (by kind and
    position, unique per cell) makes a seed one world."""

    def _obs(self) -> None:
        return None

    def _balance_chunk(self, chunk: Any, objs: Any) -> None:
        ordered = sorted(objs, key=lambda o: (type(o).__name__, int(o.pos[0]), int(o.pos[1])))
        super()._balance_chunk(chunk, ordered)


def _name(thing: Any) -> str:
    return type(thing).__name__.lower()


@dataclass
class Feedback:
    """What one action did, structured (``note`` is the same in words)."""

    action: str
    target: str  # what the agent faced when it acted
    changes: dict[str, int] = field(default_factory=dict)  # inventory deltas
    made: str | None = None  # what now fills the faced cell, when the action changed it
    unlocked: list[str] = field(default_factory=list)
    missing: dict[str, Any] = field(default_factory=dict)  # {"items": {...}, "nearby": [...], "where": [...]}
    moved: bool = False
    hurt: int = 0  # health lost in this step
    by: str | None = None  # the hostile creature next to the agent when it was hurt, if any
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "changes": dict(self.changes),
            "made": self.made,
            "unlocked": list(self.unlocked),
            "missing": dict(self.missing),
        }

    def attack(self) -> dict[str, Any] | None:
        """The hurt as an event of its own (``action`` "hurt", ``target`` the attacker), for the lessons."""
        if not self.hurt or self.by is None:
            return None
        return {
            "action": "hurt",
            "target": self.by,
            "changes": {"health": -self.hurt},
            "made": None,
            "unlocked": [],
            "missing": {},
        }


class CrafterText(Env[str, str]):
    """Crafter with a text observation, actions by name and feedback on every step.

    ``reset(seed=s)`` builds world ``s`` (the same seed, the same world); ``step(name)`` takes one of
    :data:`ACTIONS`. ``info`` holds the structured view: ``inventory``, ``achievements`` (counts),
    ``unlocked`` (this episode), ``feedback`` (:class:`Feedback` as a dict), ``pos`` and ``facing``.

    >>> env = CrafterText(length=100)
    >>> text, info = env.reset(seed=0)
    >>> text.splitlines()[0]
    'You see (nearest first, x: right +, y: down +):'
    """

    def __init__(self, *, length: int = 10_000, area: int = 64) -> None:
        self.length = check_scalar(length, "length", int, min_val=1)
        self.area = check_scalar(area, "area", int, min_val=16)
        self._env: Any = None
        self.seed: int | None = None
        self.known = np.full((area, area), UNKNOWN, dtype=np.int8)  # material ids seen this episode
        self.steps = 0
        self.last: Feedback | None = None
        self.unlocked: list[str] = []
        self.unlocked_at: dict[str, int] = {}  # achievement → the step of the episode it first happened

    # ------------------------------------------------------------------ gymnasium contract

    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        seed = 0 if seed is None else check_scalar(seed, "seed", int, min_val=0)
        self.seed = seed
        self._env = _Quiet(area=(self.area, self.area), length=self.length, seed=seed)
        self._env.reset()
        self.known.fill(UNKNOWN)
        self.steps = 0
        self.last = None
        self.unlocked = []
        self.unlocked_at = {}
        self._remember()
        return self.describe(), self.info()

    def step(self, action: str) -> StepResult:
        if self._env is None:
            raise InvalidInput("call reset() before step()", field="action")
        if action not in ACTIONS:
            raise InvalidInput(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}", field="action")
        player = self._env._player
        before = self._snapshot()
        _, reward, done, _ = self._env.step(ACTIONS.index(action))
        self.steps += 1
        self._remember()
        self.last = self._explain(action, before)
        for name in self.last.unlocked:
            if name not in self.unlocked:
                self.unlocked.append(name)
                self.unlocked_at[name] = self.steps
        dead = player.health <= 0
        return self.describe(), float(reward), bool(dead), bool(done and not dead), self.info()

    # ------------------------------------------------------------------ what the agent reads

    @property
    def player(self) -> Any:
        return self._env._player

    @property
    def world(self) -> Any:
        return self._env._world

    @property
    def over(self) -> bool:
        return self._env is None or self.player.health <= 0 or self.steps >= self.length

    def inventory(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.player.inventory.items()}

    def achievements(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.player.achievements.items()}

    def info(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory(),
            "achievements": self.achievements(),
            "unlocked": list(self.unlocked),
            "feedback": None if self.last is None else self.last.to_dict(),
            "pos": [int(v) for v in self.player.pos],
            "facing": self.facing_name(),
            "steps": self.steps,
        }

    def cell(self, pos: tuple[int, int]) -> str:
        """What is at ``pos``: a creature's name, else the material ('void' outside the world)."""
        material, obj = self.world[pos]
        if obj is not None:
            return _name(obj)
        return "void" if material is None else str(material)

    def front(self) -> tuple[int, int]:
        x, y = (int(v) for v in self.player.pos)
        dx, dy = self.player.facing
        return (x + int(dx), y + int(dy))

    def facing_name(self) -> str:
        return self.cell(self.front())

    def view(self) -> list[tuple[str, int, int]]:
        """Everything in the local view (9×7 cells, as Crafter draws it) but grass: (name, dx, dy)."""
        x, y = (int(v) for v in self.player.pos)
        seen = []
        for dx in range(-4, 5):
            for dy in range(-3, 4):
                if dx == dy == 0:
                    continue
                name = self.cell((x + dx, y + dy))
                if name not in ("grass", "void"):
                    seen.append((name, dx, dy))
        return seen

    def describe(self) -> str:
        """The observation in words: the view, what is in front, inventory, vitals, achievements, feedback."""
        nearest: dict[str, tuple[int, int, int]] = {}  # name → (steps away, dx, dy)
        counts: dict[str, int] = {}
        for name, dx, dy in self.view():
            counts[name] = counts.get(name, 0) + 1
            far = abs(dx) + abs(dy)
            if name not in nearest or (far, dx, dy) < nearest[name]:
                nearest[name] = (far, dx, dy)
        lines = ["You see (nearest first, x: right +, y: down +):"]
        for name, (far, dx, dy) in sorted(nearest.items(), key=lambda kv: (kv[1], kv[0])):
            lines.append(f"- {name} at ({dx:+d}, {dy:+d}), {far} steps away; {counts[name]} in view")
        if len(lines) == 1:
            lines.append("- only grass")
        inv = self.inventory()
        items = ", ".join(f"{k} {v}" for k, v in inv.items() if k not in VITALS and v > 0) or "nothing"
        lines.append(f"Facing: {self.facing_name()}.")
        lines.append(f"Inventory: {items}.")
        lines.append("Vitals: " + ", ".join(f"{k} {inv[k]}/9" for k in VITALS) + ".")
        if self.player.sleeping:
            lines.append("You are asleep.")
        lines.append(f"Daylight: {float(self.world.daylight):.2f}.")
        lines.append("Unlocked: " + (", ".join(self.unlocked) or "none yet") + ".")
        if self.last is not None:
            lines.append(f"Last action: {self.last.note}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ memory of the map

    def _remember(self) -> None:
        x, y = (int(v) for v in self.player.pos)
        x0, x1 = max(0, x - 4), min(self.area, x + 5)
        y0, y1 = max(0, y - 3), min(self.area, y + 4)
        self.known[x0:x1, y0:y1] = self.world._mat_map[x0:x1, y0:y1]

    def material_id(self, name: str) -> int:
        return int(self.world._mat_ids[name])

    # ------------------------------------------------------------------ feedback

    def _snapshot(self) -> dict[str, Any]:
        front = self.front()
        _, obj = self.world[front]
        return {
            "inventory": self.inventory(),
            "achievements": self.achievements(),
            "front": front,
            "target": self.cell(front),
            "obj": obj,
            "obj_health": None if obj is None else int(obj.health),
            "pos": tuple(int(v) for v in self.player.pos),
            "sleeping": bool(self.player.sleeping),
        }

    def _explain(self, action: str, before: dict[str, Any]) -> Feedback:
        inv = self.inventory()
        # Items gained or spent, and vitals *raised* (food, drink, energy): time passing lowers vitals and
        # regenerates health on every kind of step, which says nothing about the action.
        changes = {
            k: inv[k] - v
            for k, v in before["inventory"].items()
            if inv[k] != v and (k not in VITALS or (k != "health" and inv[k] > v))
        }
        achievements = self.achievements()
        unlocked = [k for k, v in achievements.items() if v > before["achievements"][k]]
        target = str(before["target"])
        if before["sleeping"]:  # Crafter turns every action of a sleeper into sleep
            action = "sleep"
        fb = Feedback(action, target, changes=changes, unlocked=unlocked)
        pos = tuple(int(v) for v in self.player.pos)
        fb.moved = pos != before["pos"]
        after = self.cell(before["front"])
        if after != target and not action.startswith("move_"):
            fb.made = after
        fb.hurt = max(0, int(before["inventory"]["health"]) - inv["health"])
        if fb.hurt:
            # The attacker: a zombie or arrow next to the agent, else a skeleton in range (arrows fly 4+).
            near = sorted(
                (abs(dx) + abs(dy), n)
                for n, dx, dy in self.view()
                if (n in ("zombie", "arrow") and abs(dx) + abs(dy) <= 2)
                or (n == "skeleton" and abs(dx) + abs(dy) <= 5)
            )
            fb.by = near[0][1] if near else None
            if fb.by == "arrow":
                fb.by = "skeleton" if any(n == "skeleton" for n, _, _ in self.view()) else "arrow"
        fb.note = self._note(action, before, fb)
        if fb.hurt:
            cause = f"attacked by {fb.by}" if fb.by else "hungry, thirsty or tired"
            fb.note += f" Lost {fb.hurt} health ({cause}); health {inv['health']}/9."
        return fb

    def _note(self, action: str, before: dict[str, Any], fb: Feedback) -> str:
        target, inv = fb.target, before["inventory"]
        gains = ", ".join(f"{k} {v:+d}" for k, v in fb.changes.items() if k not in VITALS)
        unlocked = f" Unlocked {', '.join(fb.unlocked)}." if fb.unlocked else ""
        if action.startswith("move_"):
            if fb.moved:
                return f"moved {action[5:]}.{unlocked}"
            return f"{action} was blocked by {target}; now facing it.{unlocked}"
        if action == "do":
            obj = before["obj"]
            if obj is not None:
                left = max(0, int(obj.health))
                verb = "defeated" if left <= 0 or obj.removed else f"hit ({left} health left)"
                if isinstance(obj, creatures.Plant) and not fb.changes:
                    return "do on plant had no effect: the plant is not ripe yet."
                return f"do on {target}: {verb}. {gains}".rstrip() + unlocked
            info = rules.collect.get(target)
            if info is None:
                return f"do on {target} had no effect: {target} cannot be collected."
            lacking = {k: v for k, v in info["require"].items() if inv.get(k, 0) < v}
            if lacking:
                fb.missing = {"items": lacking}
                return f"do on {target} had no effect: needs " + _needs(lacking, inv) + "."
            if not fb.changes and info.get("probability", 1) < 1:
                return f"do on {target}: nothing this time (it yields only sometimes)."
            return f"do on {target}: {gains or 'done'}.{unlocked}"
        if action == "sleep":
            if before["sleeping"] and fb.action != "sleep":
                return "asleep: nothing else happens until energy is full or something hurts you."
            if before["sleeping"] or self.player.sleeping:
                return f"sleeping (energy {self.inventory()['energy']}/9).{unlocked}"
            return "sleep had no effect: energy is full."
        if action.startswith("place_"):
            name = action[len("place_") :]
            info = rules.place[name]
            lacking = {k: v for k, v in info["uses"].items() if inv.get(k, 0) < v}
            if before["obj"] is not None or target not in info["where"]:
                fb.missing = {"where": list(info["where"]), "items": lacking}
                return (
                    f"{action} had no effect: needs {' or '.join(info['where'])} in front (facing {target})."
                )
            if lacking:
                fb.missing = {"items": lacking}
                return f"{action} had no effect: needs {_needs(lacking, inv)}."
            return f"placed {name}. {gains}".rstrip() + unlocked
        if action.startswith("make_"):
            name = action[len("make_") :]
            info = rules.make[name]
            nearby, _ = self.world.nearby(self.player.pos, 1)
            absent = [n for n in info["nearby"] if n not in nearby]
            lacking = {k: v for k, v in info["uses"].items() if inv.get(k, 0) < v}
            if absent or lacking:
                fb.missing = {"nearby": absent, "items": lacking}
                parts = [f"a nearby {n}" for n in absent]
                if lacking:
                    parts.append(_needs(lacking, inv))
                return f"{action} had no effect: needs {' and '.join(parts)}."
            return f"made {name}. {gains}".rstrip() + unlocked
        return f"{action}.{unlocked}"


def _needs(lacking: dict[str, int], inv: dict[str, int]) -> str:
    return ", ".join(f"{n} {k} (have {inv.get(k, 0)})" for k, n in lacking.items())


class Primitives:
    """The API skill programs call, bound to one episode of a :class:`CrafterText`.

    Perception and movement only; every environment step goes through :meth:`act` so the budget, the
    feedback record (``events``) and the episode's end are kept in one place. ``budget`` caps the steps of
    the current skill run (:meth:`run_budget`); the episode's own length caps the rest.
    """

    def __init__(self, env: CrafterText, rng: np.random.Generator) -> None:
        self.env = env
        self.rng = rng
        self.events: list[dict[str, Any]] = []  # what the actions did (Feedback.to_dict), moves left out
        self.reward = 0.0
        self._limit = 0  # env.steps at which the current run stops
        self.threat: str | None = None  # what hurt the agent last
        self.interrupt = True  # stop the running skill when hurt (unless it is the defence itself)
        self.defending = False
        self.alarm = 2  # a vital at or below it interrupts the running skill (once per fall)
        self._alarmed: dict[str, int] = {}

    def run_budget(self, steps: int) -> None:
        """Allow the next skill run ``steps`` environment steps."""
        self._limit = self.env.steps + steps

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The names skill code sees."""
        return {
            "act": self.act,
            "approach": self.approach,
            "explore": self.explore,
            "face": self.face,
            "facing": self.facing,
            "nearest": self.nearest,
            "near": self.near,
            "seen": self.seen,
            "inventory": self.inventory,
            "count": self.count,
            "wait": self.wait,
        }

    # ------------------------------------------------------------------ actions

    def act(self, action: str) -> str:
        """Take one of the 17 actions; returns the feedback note."""
        if not isinstance(action, str) or action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
        if self.env.over:
            raise OutOfSteps("the episode is over")
        if self.env.steps >= self._limit:
            raise OutOfSteps("the skill used up its step budget")
        if action.startswith("move_"):  # the harness never walks into lava (Voyager's pathfinder neither)
            x, y = (int(v) for v in self.env.player.pos)
            dx, dy = DIRECTIONS[action[5:]]
            if self.env.cell((x + dx, y + dy)) == "lava":
                raise ValueError(f"{action} would walk into lava")
        _, reward, _, _, _ = self.env.step(action)
        self.reward += reward
        assert self.env.last is not None
        last = self.env.last
        if not action.startswith("move_") and action != "noop":  # moves teach nothing about effects
            self.events.append(last.to_dict())
        attack = last.attack()
        if attack is not None:
            self.events.append(attack)
        if last.hurt and last.by is not None:
            self.threat = last.by
            if self.interrupt and not self.defending:
                raise Hurt(f"hurt by {last.by}; health {self.env.inventory()['health']}/9")
        inv = self.env.inventory()
        for vital in VITALS[1:]:  # a vital that just fell to the alarm level stops the skill too
            if inv[vital] < self._alarmed.get(vital, 10) and inv[vital] <= self.alarm:
                self._alarmed[vital] = inv[vital]
                if self.interrupt and not self.defending:
                    raise Hurt(f"{vital} is down to {inv[vital]}/9")
            elif inv[vital] > self.alarm:
                self._alarmed.pop(vital, None)
        return last.note

    def wait(self, steps: int = 1) -> None:
        """Do nothing for ``steps`` steps (noop)."""
        for _ in range(max(1, min(int(steps), 100))):
            self.act("noop")

    # ------------------------------------------------------------------ perception

    def inventory(self, item: str | None = None) -> Any:
        """The inventory (vitals included), or the count of one item."""
        inv = self.env.inventory()
        return inv if item is None else inv.get(item, 0)

    def count(self, achievement: str) -> int:
        """How often ``achievement`` happened this episode."""
        return self.env.achievements().get(achievement, 0)

    def facing(self) -> str:
        """What is in front of the agent."""
        return self.env.facing_name()

    def near(self, name: str) -> bool:
        """Whether ``name`` is within one cell (where Crafter's ``make_*`` looks for tables and furnaces)."""
        x, y = (int(v) for v in self.env.player.pos)
        return any(self.env.cell((x + dx, y + dy)) == name for dx in (-1, 0, 1) for dy in (-1, 0, 1))

    def nearest(self, name: str) -> tuple[int, int] | None:
        """Offset (dx, dy) of the nearest ``name`` seen: in view, or (a material) anywhere this episode."""
        targets = self._targets(name)
        if not targets:
            return None
        x, y = (int(v) for v in self.env.player.pos)
        tx, ty = min(targets, key=lambda p: (abs(p[0] - x) + abs(p[1] - y), p))
        return (tx - x, ty - y)

    def seen(self, name: str) -> bool:
        return bool(self._targets(name))

    def _targets(self, name: str) -> list[tuple[int, int]]:
        if name in CREATURES:
            x, y = (int(v) for v in self.env.player.pos)
            return [(x + dx, y + dy) for n, dx, dy in self.env.view() if n == name]
        if name not in MATERIALS:
            raise ValueError(f"unknown thing {name!r}; things: {', '.join(MATERIALS + CREATURES)}")
        xs, ys = np.nonzero(self.env.known == self.env.material_id(name))
        return list(zip(xs.tolist(), ys.tolist(), strict=True))

    # ------------------------------------------------------------------ movement

    def face(self, direction: str) -> str:
        """Turn (and, if the cell is free, step) toward ``direction``: left, right, up or down."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
        return self.act(f"move_{direction}")

    def approach(self, name: str, max_steps: int = 60, through: list[str] | tuple[str, ...] = ()) -> bool:
        """Walk next to the nearest ``name`` seen and face it; True when it is in front.

        Breadth-first search over the walkable cells seen this episode (grass, sand, path; never lava),
        re-planned after every step because creatures move. ``through`` names materials to dig through on
        the way (face the cell, ``do``; a cell that does not give way is avoided from then on). False when
        none is seen or none is reachable within ``max_steps`` steps.
        """
        dig = {str(m) for m in through if m in MATERIALS and m not in WALKABLE and m != "lava"}
        stuck: set[tuple[int, int]] = set()
        for _ in range(max(1, min(int(max_steps), 500))):
            if self.env.facing_name() == name:
                return True
            path = self._path_to(name, dig, stuck)
            if path is None:
                return False
            if not path:  # adjacent: turn toward it
                if not self._turn_to(name):
                    return False
                continue
            x, y = (int(v) for v in self.env.player.pos)
            nxt = (x + path[0][0], y + path[0][1])
            if self.env.cell(nxt) in dig:
                self.act(_MOVE_OF[path[0]])  # blocked: turns to face it
                if self.env.front() == nxt:
                    self.act("do")
                if self.env.cell(nxt) not in WALKABLE:
                    stuck.add(nxt)
                continue
            self.act(_MOVE_OF[path[0]])
        return self.env.facing_name() == name

    def explore(self, steps: int = 20) -> int:
        """Walk toward the nearest cells not seen yet for up to ``steps`` steps; returns cells newly seen."""
        before = int((self.env.known != UNKNOWN).sum())
        for _ in range(max(1, min(int(steps), 500))):
            path = self._path_to_unknown()
            if not path:  # nothing unseen within reach: a random step, never onto lava
                x, y = (int(v) for v in self.env.player.pos)
                safe = [d for d, (dx, dy) in DIRECTIONS.items() if self.env.cell((x + dx, y + dy)) != "lava"]
                self.act(f"move_{safe[int(self.rng.integers(len(safe)))]}" if safe else "noop")
                continue
            self.act(_MOVE_OF[path[0]])
        return int((self.env.known != UNKNOWN).sum()) - before

    def _free(
        self,
        pos: tuple[int, int],
        dig: AbstractSet[str] = frozenset(),
        stuck: AbstractSet[tuple[int, int]] = frozenset(),
    ) -> bool:
        if not (0 <= pos[0] < self.env.area and 0 <= pos[1] < self.env.area) or pos in stuck:
            return False
        known = int(self.env.known[pos])
        if known == UNKNOWN:
            return False
        material = self.env.world._mat_names[known]
        if material not in WALKABLE and material not in dig:
            return False
        return self.env.world[pos][1] is None

    def _bfs(
        self,
        is_goal: Callable[[tuple[int, int]], bool],
        dig: AbstractSet[str] = frozenset(),
        stuck: AbstractSet[tuple[int, int]] = frozenset(),
    ) -> list[tuple[int, int]] | None:
        """Moves (offsets) from the agent to the nearest cell satisfying ``is_goal``; None if none."""
        start = tuple(int(v) for v in self.env.player.pos)
        start_xy = (start[0], start[1])
        if is_goal(start_xy):
            return []
        parent: dict[tuple[int, int], tuple[tuple[int, int], tuple[int, int]] | None] = {start_xy: None}
        queue = deque([start_xy])
        while queue:
            cell = queue.popleft()
            for offset in DIRECTIONS.values():
                nxt = (cell[0] + offset[0], cell[1] + offset[1])
                if nxt in parent or not self._free(nxt, dig, stuck):
                    continue
                parent[nxt] = (cell, offset)
                if is_goal(nxt):
                    moves = []
                    node: tuple[int, int] = nxt
                    while parent[node] is not None:
                        prev, move = parent[node]  # type: ignore[misc]
                        moves.append(move)
                        node = prev
                    return moves[::-1]
                queue.append(nxt)
        return None

    def _path_to(
        self,
        name: str,
        dig: AbstractSet[str] = frozenset(),
        stuck: AbstractSet[tuple[int, int]] = frozenset(),
    ) -> list[tuple[int, int]] | None:
        targets = set(self._targets(name))
        if not targets:
            return None

        def beside(cell: tuple[int, int]) -> bool:
            return any((cell[0] + dx, cell[1] + dy) in targets for dx, dy in DIRECTIONS.values())

        return self._bfs(beside, dig, stuck)

    def _path_to_unknown(self) -> list[tuple[int, int]] | None:
        known = self.env.known
        size = self.env.area

        def frontier(cell: tuple[int, int]) -> bool:
            for dx, dy in DIRECTIONS.values():
                x, y = cell[0] + dx * 4, cell[1] + dy * 3
                if 0 <= x < size and 0 <= y < size and known[x, y] == UNKNOWN:
                    return True
            return False

        path = self._bfs(frontier)
        return path or None

    def _turn_to(self, name: str) -> bool:
        """Face an adjacent ``name``: step toward it (blocked → turned); a walkable one needs a step back."""
        x, y = (int(v) for v in self.env.player.pos)
        for dname, (dx, dy) in DIRECTIONS.items():
            if self.env.cell((x + dx, y + dy)) != name:
                continue
            if name not in WALKABLE:
                self.act(f"move_{dname}")
                return True
            back = {"left": "right", "right": "left", "up": "down", "down": "up"}[dname]
            self.act(f"move_{back}")
            self.act(f"move_{dname}")
            return True
        return False
