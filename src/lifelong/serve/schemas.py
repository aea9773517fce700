"""Request bodies of the service, validated by pydantic: a bad body is a 422 naming the field.

The chat and completion requests follow OpenAI's wire format; fields the service does not use are
ignored, except a short list passed through to an HTTP upstream (``PASS_THROUGH``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

PASS_THROUGH = ("top_p", "presence_penalty", "frequency_penalty", "seed")
NAME = 256  # longest user, session or key name (as in lifelong.experience.records)
TEXT = 100_000  # longest single text (a message, a prompt, a memory)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(max_length=64)
    text: str | None = Field(None, max_length=TEXT)


class ChatMessage(BaseModel):
    """A message; the upstream receives it as {role, content} with the content's text (parts joined)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="tool messages are not supported: the service does not pass tools through"
    )
    content: str | list[ContentPart] | None = Field(None, max_length=TEXT)
    name: str | None = Field(None, max_length=NAME)


class _Generation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=NAME)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    n: int | None = Field(None, ge=1, le=1, description="only one choice per request")
    stream: bool = False
    stop: str | list[str] | None = Field(None, max_length=4)
    user: str | None = Field(None, min_length=1, max_length=NAME, description="whose request: the user scope")

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def extra_fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PASS_THROUGH if getattr(self, k) is not None}


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_Generation):
    prompt: str = Field(max_length=TEXT)
    echo: bool = False


class FeedbackRequest(BaseModel):
    """Feedback on one interaction: any of accept, rating, correction, reward, outcome, remember."""

    model_config = ConfigDict(extra="forbid")
    interaction_id: str = Field(min_length=1, max_length=128)
    feedback_id: str | None = Field(
        None, min_length=1, max_length=100, description="makes the request idempotent: a retry is a no-op"
    )
    accept: bool | None = None
    rating: float | None = None
    rating_scale: tuple[float, float] | None = None
    correction: JsonValue = None
    reward: float | None = None
    outcome: JsonValue = None
    remember: str | list[str] | None = Field(None, description="facts to remember for the interaction's user")

    @model_validator(mode="after")
    def _some_feedback(self) -> FeedbackRequest:
        kinds = (self.accept, self.rating, self.correction, self.reward, self.outcome, self.remember)
        if all(k is None for k in kinds):
            raise ValueError("give at least one of accept, rating, correction, reward, outcome, remember")
        if self.remember is not None and self.outcome is not None:
            raise ValueError("give remember or outcome, not both (remember is an outcome)")
        return self


class MemoryMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str = Field(max_length=64)
    content: str = Field(max_length=TEXT)
    name: str | None = Field(None, min_length=1, max_length=NAME, description="the speaker")


class MemoryAdd(BaseModel):
    """mem0's ``add``: a ``text`` (or the user messages of ``messages``) to remember for ``user_id``;
    with ``thread``, every message is kept verbatim as a turn of that conversation."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=NAME)
    text: str | None = Field(None, min_length=1, max_length=TEXT)
    messages: list[MemoryMessage] | None = Field(None, min_length=1, max_length=1000)
    key: str | None = Field(
        None, min_length=1, max_length=NAME, description="a later fact with this key supersedes it"
    )
    thread: str | None = Field(
        None,
        min_length=1,
        max_length=NAME,
        description="conversation ingest: every message becomes a turn of this thread, recalled with "
        "the turns around it",
    )
    time: float | None = Field(
        None, ge=0, le=1e11, description="when it was said (Unix seconds; default: now)"
    )

    @model_validator(mode="after")
    def _thread_needs_messages(self) -> MemoryAdd:
        if self.thread is not None and self.messages is None:
            raise ValueError("thread names the conversation of messages: give messages")
        return self

    @model_validator(mode="after")
    def _one_source(self) -> MemoryAdd:
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of text or messages")
        return self


class MemoryRetire(BaseModel):
    """Why a memory is wrong: kept with it, so the retirement explains itself."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


class Commit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field("", max_length=1000)


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    override: str | None = Field(None, min_length=1, max_length=1000)


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: int | None = Field(None, ge=1)
    override: str | None = Field(None, min_length=1, max_length=1000)


class AppDeclaration(BaseModel):
    """An app: what it asks (``task``), the ``labels`` of a label app, an ``instruction`` (a label
    prompt's first line, or a chat app's system message when the client sends none)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: Literal["chat", "label", "completion"]
    labels: list[str] = Field(default_factory=list, max_length=10_000)
    instruction: str | None = Field(None, max_length=4000)
    harness: bool = Field(True, description="tune the prompt in the background (bounded model calls)")
    misapply_budget: float = Field(
        0.05,
        ge=0,
        le=1,
        description="chat: the most share of requests that may get a recalled answer to another question",
    )


# ------------------------------------------------------------------------------------------ replies


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class AppView(Reply):
    name: str
    task: str
    labels: list[str]
    instruction: str | None
    harness: bool
    misapply_budget: float


class AppPut(AppView):
    changed: bool


class AppList(Reply):
    data: list[AppView]


class FeedbackResult(Reply):
    ids: list[str]
    interaction_id: str
    duplicate: bool


class MemoryView(Reply):
    id: str
    memory: str
    user_id: str | None
    key: str | None
    created_at: float
    updated_at: float
    status: str
    sources: list[str]
    usefulness: float
    surfaced: int = 0
    helped: int = 0
    thread: str | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    reason: str | None = None
    score: float | None = None


class MemoryList(Reply):
    results: list[MemoryView]


class MemoryAdded(MemoryList):
    interaction_id: str


class Forgotten(Reply):
    forgotten: dict[str, Any]
    clean: bool


class InteractionView(Reply):
    id: str
    time: float
    user: str | None
    session: str | None
    app: str | None
    endpoint: str | None
    query: JsonValue
    answer: JsonValue
    shadow: JsonValue = Field(description="the frozen shadow's answer (None: blank, or not asked)")
    shadow_asked: bool
    recalled: dict[str, Any]
    proposals: dict[str, Any] = Field(description="what each expert proposed, with its score")
    candidates: list[Any] = Field(description="what the gate chose among, with each candidate's features")
    score: float | None
    shadow_score: float | None
    feedback: list[dict[str, Any]]
    right_answer: JsonValue


class InteractionList(Reply):
    data: list[InteractionView]


class LearnerView(Reply):
    name: str
    app: str | None
    class_: str = Field(alias="class")
    version: int
    items: int | None
    promoted: int | None
    versions: int
    serving_from_seq: int


class LearnerList(Reply):
    data: list[LearnerView]


class Versions(Reply):
    learner: str
    app: str | None
    promoted: int | None
    versions: list[dict[str, Any]]
    history: list[dict[str, Any]]


class Committed(Reply):
    name: str
    version: int
    digest: str
    metrics: dict[str, Any]


class Promoted(Reply):
    name: str
    promoted: int


class Diff(Reply):
    changes: list[dict[str, Any]]


class CurvePoint(Reply):
    end: float
    requests: int
    served: float
    paired: int
    served_paired: float | None
    shadow: float | None


class Curve(Reply):
    app: str | None = None
    window: int
    judged: int
    paired: int
    served: float | None
    served_paired: float | None
    shadow: float | None
    right_served: float
    right_shadow: float
    points: list[CurvePoint]


class TenantRow(Reply):
    tenant: str
    interactions: int


class TenantList(Reply):
    data: list[TenantRow]


class ModelRow(Reply):
    id: str
    object: str = "model"
    owned_by: str


class ModelList(Reply):
    object: str = "list"
    data: list[ModelRow]


class Health(Reply):
    status: str
    model: str
    log_seq: int
    tenants_loaded: int
