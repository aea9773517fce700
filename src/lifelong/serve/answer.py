"""The service as a host of the turn: one proxied request through its app's agent.

The agent's pipeline (:mod:`lifelong.agents.agent`) runs in three parts: on the learner thread the
engine catches up with the log and :meth:`~lifelong.agents.Agent.begin` recalls, asks the experts and
renders the model calls; the calls — the request with the learned context and, for the frozen shadow
control or a plain candidate, the same request without it — are awaited concurrently on the upstream;
back on the learner thread :meth:`~lifelong.agents.Agent.finish` amends, combines and gates, and
:meth:`~lifelong.agents.Agent.record` writes the interaction, which is logged durably before the client
gets the answer (so feedback on its id can never miss it).

A stream is passed through as the upstream generates it when nothing could replace the model's answer
(no experts, no gate, no lesson recalled); otherwise the chosen answer is sent as one chunk once it is
known, so the client never sees text the service did not serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse

from lifelong.agents.agent import CONTEXT, PLAIN, Limits, Turn
from lifelong.errors import LifelongError
from lifelong.experience.records import JSON, Interaction, Scope, new_id
from lifelong.learners.context.base import Recalled
from lifelong.learners.context.gate import same_answer, source_of
from lifelong.models.base import Completion
from lifelong.serve import metrics as prom
from lifelong.serve import openai
from lifelong.serve.deps import Service
from lifelong.serve.engine import AppState
from lifelong.serve.errors import status_of


@dataclass(frozen=True)
class Proxied:
    """A request to answer: its scope and app, the observation the agent sees (the client's request),
    what the client asked of the model (``limits``; None where the app's task decides), and how to
    answer (``kind``, ``stream``, the ``model`` name to echo)."""

    kind: openai.Kind
    scope: Scope
    app: str | None
    observation: dict[str, JSON]
    limits: Limits | None
    stream: bool
    model: str


async def answer(s: Service, request: Proxied) -> Response:
    start = time.perf_counter()
    interaction_id = new_id()
    now = time.time()
    shadow = random.random() < s.config.shadow_rate
    s.in_flight += 1
    s.last_start = time.monotonic()
    try:
        state, turn = await s.in_engine(
            lambda: s.engine.begin(
                request.scope, request.app, request.observation, now=now, shadow=shadow, limits=request.limits
            )
        )
    except BaseException:
        s.in_flight -= 1
        raise
    plain: asyncio.Task[Completion] | None = None
    if PLAIN in turn.calls:
        plain = asyncio.create_task(s.upstream.complete(turn.calls[PLAIN]))
    prepared = time.perf_counter() - start
    created = int(time.time())
    headers = {"X-Lifelong-Interaction": interaction_id}
    finish = _Finisher(s, state, turn, request, interaction_id, plain, prepared)
    if not request.stream:
        try:
            out = await s.upstream.complete(turn.calls[CONTEXT])
            text, info = await finish(out)
        finally:
            s.in_flight -= 1
            finish.abandon()
        headers["X-Lifelong-Overhead-Ms"] = str(info["overhead_ms"])
        headers["X-Lifelong-Upstream-Ms"] = str(info["upstream_ms"])
        usage = {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens}
        body = openai.reply(
            request.kind,
            interaction_id,
            created,
            request.model,
            text,
            out.finish_reason or "stop",
            usage,
            info,
        )
        return JSONResponse(body, headers=headers)

    async def events() -> AsyncIterator[str]:
        try:
            if request.kind == "chat":
                yield openai.chunk("chat", interaction_id, created, request.model, None, role=True)
            final: Completion | None = None
            try:
                if turn.streamable:
                    async for piece in s.upstream.stream(turn.calls[CONTEXT]):
                        if isinstance(piece, Completion):
                            final = piece
                        else:
                            yield openai.chunk(request.kind, interaction_id, created, request.model, piece)
                    assert final is not None
                    _, info = await finish(final)
                else:
                    final = await s.upstream.complete(turn.calls[CONTEXT])
                    text, info = await finish(final)
                    if text:
                        yield openai.chunk(request.kind, interaction_id, created, request.model, text)
            except LifelongError as exc:
                status, kind = status_of(exc)
                yield openai.stream_error(status, str(exc), kind)
                return
            yield openai.chunk(
                request.kind,
                interaction_id,
                created,
                request.model,
                None,
                final.finish_reason or "stop",
                extra={"lifelong": info},
            )
            yield openai.DONE
        finally:
            s.in_flight -= 1
            finish.abandon()

    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


class _Finisher:
    """The second half of a turn, once the served call has answered: the plain call's answer (a failed
    shadow only loses the comparison), finish and record on the learner thread, log, measure."""

    def __init__(
        self,
        s: Service,
        state: AppState,
        turn: Turn,
        request: Proxied,
        interaction_id: str,
        plain: asyncio.Task[Completion] | None,
        prepared: float,
    ) -> None:
        self.s, self.state, self.turn, self.request = s, state, turn, request
        self.interaction_id, self.plain, self.prepared = interaction_id, plain, prepared

    def abandon(self) -> None:
        """Cancel the plain call if nothing awaits it any more (the served call failed, the client left)."""
        if self.plain is None:
            return
        if not self.plain.done():
            self.plain.cancel()
        elif not self.plain.cancelled():
            self.plain.exception()  # read, so a failed shadow is not reported as never retrieved

    async def __call__(self, out: Completion) -> tuple[str, dict[str, Any]]:
        s, turn = self.s, self.turn
        outputs: dict[str, Completion] = {CONTEXT: out}
        if self.plain is not None:
            # the shadow is a measurement: its failure fails nothing the client asked for
            with contextlib.suppress(LifelongError):
                outputs[PLAIN] = await self.plain
        after = time.perf_counter()
        metadata: dict[str, JSON] = {
            "endpoint": self.request.kind,
            "model": s.upstream.name,
            "upstream_ms": round(out.seconds * 1000, 3),
            "shadow_asked": PLAIN in turn.calls or turn.plain_is_context,
        }
        decision, interaction = await s.in_engine(
            lambda: s.engine.finish(
                self.state, turn, outputs, interaction_id=self.interaction_id, metadata=metadata
            )
        )
        await s.in_pool(lambda: s.log.append(interaction))
        s.tenant_of.remember(interaction.id, interaction.scope.tenant)
        overhead = self.prepared + (time.perf_counter() - after)
        prom.OVERHEAD_SECONDS.observe(overhead)
        prom.UPSTREAM_SECONDS.observe(out.seconds)
        info = {
            "interaction_id": self.interaction_id,
            "app": self.request.app,
            "overhead_ms": round(overhead * 1000, 3),
            "upstream_ms": round(out.seconds * 1000, 3),
            "recalled": _recalled(turn),
            "source": _source(decision.gate, interaction),
        }
        action = interaction.action
        return ("" if action is None else action if isinstance(action, str) else str(action)), info


def _recalled(turn: Turn) -> list[dict[str, Any]]:
    context = turn.context
    rows: list[dict[str, Any]] = []
    for name in ("memory", "examples", "lessons"):
        items: list[Recalled] = getattr(context, name)
        rows += [
            {"learner": name, "id": r.id, "text": r.item.text, "score": round(r.score, 4)} for r in items
        ]
    return rows


def _source(gate: list[dict[str, JSON]], interaction: Interaction) -> str | None:
    """Which candidate was served (``model``, ``plain``, ``direct``, ``example``), when a gate chose."""
    for candidate in gate:
        features = candidate.get("features")
        if isinstance(features, dict) and same_answer(candidate.get("action"), interaction.action):
            return source_of(features)
    return None
