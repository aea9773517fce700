"""The real models: llama.cpp Gemma 3 270M in-process, the OpenAI-compatible client (both faces) against a
real local llama.cpp server and against a real scripted HTTP server on loopback (for the answers a
healthy llama.cpp server never gives: 503s, refusals, malformed JSON, broken streams), and the MiniLM
embedder. Nothing here is mocked."""

from __future__ import annotations

import asyncio
import doctest
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

import lifelong.models.openai_compat as openai_compat
from lifelong.errors import BackendUnavailable, InvalidInput, ModelError
from lifelong.models import Completion, LlamaCpp, MiniLM, OpenAICompatible, default_gguf
from lifelong.models.base import Call
from lifelong.models.openai_compat import Failure, RetryPolicy, closest
from lifelong.serve.upstream import HttpUpstream

pytestmark = pytest.mark.slow

LABELS = ["card_arrival", "lost_or_stolen_card", "top_up_failed", "change_pin"]


@pytest.fixture(scope="module")
def llama() -> LlamaCpp:
    return LlamaCpp(n_ctx=1024)


def test_a_completion_counts_its_tokens_and_confidence(llama: LlamaCpp) -> None:
    out = llama.complete("def add(a, b):\n    return", max_tokens=8, stop=["\n"])
    assert out.prompt_tokens > 5 and 0 < out.completion_tokens <= 8
    assert len(out.token_logprobs) == out.completion_tokens
    assert all(lp <= 0.0 for lp in out.token_logprobs)
    assert "\n" not in out.text


def test_constrained_output_is_always_one_of_the_labels(llama: LlamaCpp) -> None:
    for query in ["my card was stolen", "I forgot my PIN", "qwerty zxcv", "Top-up did not go through"]:
        out = llama.complete(f"Query: {query}\nIntent:", choices=[" " + label for label in LABELS])
        assert out.text.strip() in LABELS


def test_greedy_decoding_is_deterministic(llama: LlamaCpp) -> None:
    prompt = "import os\nimport sys\n\n\ndef main():\n    "
    assert llama.complete(prompt, max_tokens=12).text == llama.complete(prompt, max_tokens=12).text


def test_an_overlong_prompt_keeps_its_end(llama: LlamaCpp) -> None:
    prompt = "x = 1\n" * 2000 + "def tail():\n    return"
    out = llama.complete(prompt, max_tokens=4)
    assert out.prompt_tokens <= llama.n_ctx


def test_bad_arguments_and_missing_files_are_clear(llama: LlamaCpp, tmp_path: object) -> None:
    with pytest.raises(InvalidInput, match="max_tokens"):
        llama.complete("x", max_tokens=0)
    with pytest.raises(InvalidInput, match="choices"):
        llama.complete("x", choices=[""])
    with pytest.raises(LookupError, match="no GGUF model file"):
        LlamaCpp("/nonexistent/model.gguf")


def test_the_model_file_is_assembled_once_and_cached() -> None:
    first = default_gguf()
    started = time.perf_counter()
    assert default_gguf() == first and first.stat().st_size > 100_000_000
    assert time.perf_counter() - started < 0.1  # no second SHA-256 of 250 MB


# ---------------------------------------------------------------- the OpenAI-compatible backend


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "lifelong.models.llama_server", "--model", str(default_gguf())]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--model_alias", "gemma"]
    # The server logs ~130 KB while loading: to a file, never to a pipe nobody drains (it would block).
    output = tmp_path_factory.mktemp("server") / "server.log"
    with output.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the llama.cpp server exited: {output.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                json.loads(response.read())
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the llama.cpp server did not answer within 120 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_completions_round_trip_against_a_real_server(server: str, llama: LlamaCpp) -> None:
    model = OpenAICompatible(server, model="gemma", timeout=60)
    prompt = "def add(a, b):\n    return"
    out = model.complete(prompt, max_tokens=8, stop=["\n"])
    assert out.prompt_tokens > 5 and out.completion_tokens > 0
    assert out.text == llama.complete(prompt, max_tokens=8, stop=["\n"]).text  # same file, same greedy answer


def test_chat_round_trips_against_a_real_server(server: str) -> None:
    out = OpenAICompatible(server, model="gemma").chat(
        [{"role": "user", "content": "Say hello."}], max_tokens=8
    )
    assert isinstance(out.text, str) and out.prompt_tokens > 3  # a base model may end its turn at once


def test_choices_are_projected_onto_the_label_set(server: str) -> None:
    out = OpenAICompatible(server, model="gemma").complete(
        "Query: my card was stolen\nIntent:", choices=LABELS
    )
    assert out.text in LABELS
    assert closest(" lost_or_stolen_card\n", LABELS) == "lost_or_stolen_card"
    assert closest("top up failed", LABELS) == "top_up_failed"


def test_a_server_error_is_a_model_error_with_its_message(server: str) -> None:
    with pytest.raises(ModelError, match=r"HTTP \d{3}.*max_tokens"):  # llama.cpp's server answers 500 here
        OpenAICompatible(server, model="gemma", retries=1, backoff=0.01).complete("x", max_tokens=-5)


def test_an_unreachable_server_is_backend_unavailable_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    model = OpenAICompatible(url, retries=2, backoff=0.05, timeout=1)
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable, match=r"after 3 attempts.*llama_cpp\.server") as info:
        model.complete("hello")
    assert info.value.url == url + "/v1/completions"
    assert time.perf_counter() - started < 5
    with pytest.raises(InvalidInput, match="base_url"):
        OpenAICompatible("localhost:8000")


def test_the_async_face_gives_the_same_answers_and_streams_them(server: str) -> None:
    prompt = "def add(a, b):\n    return"
    with OpenAICompatible(server, model="gemma") as model:
        expected = model.complete(prompt, max_tokens=8, stop=["\n"])

    async def run() -> tuple[Completion, list[str | Completion], Completion]:
        async with OpenAICompatible(server, model="gemma") as model:
            answer = await model.acomplete(prompt, max_tokens=8, stop=["\n"])
            pieces = [p async for p in model.astream(prompt, max_tokens=8, stop=["\n"])]
            chat = await model.achat([{"role": "user", "content": "Say hello."}], max_tokens=8)
            return answer, pieces, chat

    answer, pieces, chat = asyncio.run(run())
    assert answer.text == expected.text and answer.prompt_tokens == expected.prompt_tokens
    *deltas, final = pieces
    assert isinstance(final, Completion) and all(isinstance(d, str) for d in deltas)
    assert "".join(str(d) for d in deltas) == final.text == expected.text
    assert final.completion_tokens > 0 and final.finish_reason in ("stop", "length")
    assert isinstance(chat.text, str) and chat.prompt_tokens > 3


def test_the_model_check_against_a_real_server(server: str) -> None:
    model = OpenAICompatible(server)  # none named: the server serves exactly one
    assert model.check() == "gemma" and model.name == model.model == "gemma"
    with pytest.raises(InvalidInput, match=r"does not serve 'gpt-9'; it serves gemma") as info:
        asyncio.run(OpenAICompatible(server, model="gpt-9").acheck())
    assert info.value.field == "--model"


def test_the_module_example_runs() -> None:
    failures, tried = doctest.testmod(openai_compat, optionflags=doctest.ELLIPSIS)
    assert tried and not failures


# ---------------------------------------------------------------- the client against a scripted server


@dataclass(frozen=True)
class Answer:
    """What the scripted server answers to one request."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0  # seconds before answering
    cut: bool = False  # promise more bytes than are sent, then close the connection


class Scripted(ThreadingHTTPServer):
    """A real HTTP server on loopback: each request gets the next scripted answer; it keeps what it
    was asked (method, path, JSON body, headers)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.answers: list[Answer] = []
        self.seen: list[tuple[str, str, Any, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, *answers: Answer) -> Scripted:
        with self.lock:
            self.answers, self.seen = list(answers), []
        return self

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: the write fails, as it should


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: Scripted

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        with self.server.lock:
            self.server.seen.append((self.command, self.path, body, dict(self.headers)))
            answer = self.server.answers.pop(0) if self.server.answers else Answer(599, b"nothing scripted")
        time.sleep(answer.delay)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body) + (1000 if answer.cut else 0)))
        self.end_headers()
        self.wfile.write(answer.body)
        self.wfile.flush()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    stub = Scripted()
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.shutdown()
    stub.server_close()


def ok(text: str = "hello", usage: tuple[int, int] = (3, 1), finish: str = "length") -> Answer:
    choice = {"index": 0, "text": text, "finish_reason": finish}
    return Answer(
        body=json.dumps({"choices": [choice], "usage": dict(zip(USAGE, usage, strict=True))}).encode()
    )


def chat_ok(message: dict[str, Any]) -> Answer:
    return Answer(body=json.dumps({"choices": [{"index": 0, "message": message}]}).encode())


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + (["data: [DONE]\n\n"] if done else [])
    return ": keep-alive\n\n".join(lines).encode()


def models(*names: str) -> Answer:
    return Answer(body=json.dumps({"object": "list", "data": [{"id": n} for n in names]}).encode())


USAGE = ("prompt_tokens", "completion_tokens")
FACES = ["sync", "async"]


def call(face: str, model: OpenAICompatible, method: str, *args: Any, **kwargs: Any) -> Any:
    """``model.method(...)`` on the synchronous face, or ``model.amethod(...)`` awaited on the other."""
    if face == "sync":
        try:
            return getattr(model, method)(*args, **kwargs)
        finally:
            model.close()

    async def run() -> Any:
        try:
            return await getattr(model, "a" + method)(*args, **kwargs)
        finally:
            await model.aclose()

    return asyncio.run(run())


def stream(model: OpenAICompatible, *args: Any, **kwargs: Any) -> list[str | Completion]:
    async def run() -> list[str | Completion]:
        try:
            return [piece async for piece in model.astream(*args, **kwargs)]
        finally:
            await model.aclose()

    return asyncio.run(run())


def quick(url: str, **kwargs: Any) -> OpenAICompatible:
    return OpenAICompatible(url, **{"model": "m", "backoff": 0.01, "timeout": 5.0, **kwargs})


def test_the_retry_policy_backs_off_exponentially_and_decides_the_error() -> None:
    policy = RetryPolicy(retries=2, backoff=0.1)
    for attempt, low in ((1, 0.1), (2, 0.2), (3, 0.4)):
        assert all(low <= policy.delay(attempt) <= 2 * low for _ in range(50))
    assert 0.1 <= policy.after("u", 1, Failure(503, "busy")) <= 0.2
    assert 0.2 <= policy.after("u", 2, Failure(None, "refused")) <= 0.4
    with pytest.raises(ModelError, match=r"refused the request \(HTTP 400\): no"):
        policy.after("u", 1, Failure(400, "no"))
    with pytest.raises(ModelError, match=r"kept failing \(3 attempts\), last answer HTTP 503: busy"):
        policy.after("u", 3, Failure(503, "busy"))
    with pytest.raises(BackendUnavailable, match=r"refused \(after 3 attempts\); start an OpenAI"):
        policy.after("u", 3, Failure(None, "refused"))
    with pytest.raises(InvalidInput, match="retries"):
        RetryPolicy(retries=-1)


@pytest.mark.parametrize("face", FACES)
def test_a_503_is_retried_then_the_answer_comes(face: str, scripted: Scripted) -> None:
    scripted.script(Answer(503, b"loading"), Answer(503, b"loading"), ok("hi", (4, 2)))
    out = call(face, quick(scripted.url, retries=2), "complete", "x")
    assert (out.text, out.prompt_tokens, out.completion_tokens, out.finish_reason) == ("hi", 4, 2, "length")
    assert [path for _, path, _, _ in scripted.seen] == ["/v1/completions"] * 3


@pytest.mark.parametrize("face", FACES)
def test_retries_run_out_on_a_server_that_answers_or_one_that_does_not(face: str, scripted: Scripted) -> None:
    scripted.script(*[Answer(502, b"bad gateway")] * 3)
    with pytest.raises(ModelError, match=r"kept failing \(3 attempts\), last answer HTTP 502: bad gateway"):
        call(face, quick(scripted.url, retries=2), "complete", "x")
    assert len(scripted.seen) == 3
    scripted.script(*[Answer(delay=1.0)] * 2)  # answers after the read timeout: no answer at all
    with pytest.raises(BackendUnavailable, match=r"ReadTimeout.*after 2 attempts") as info:
        call(face, quick(scripted.url, retries=1, timeout=0.2), "chat", [{"role": "user", "content": "x"}])
    assert info.value.url == scripted.url + "/v1/chat/completions" and len(scripted.seen) == 2
    unreachable = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(BackendUnavailable, match=r"cannot reach .*/v1/completions: .*after 2 attempts"):
        call(face, quick(unreachable, retries=1), "complete", "x")


@pytest.mark.parametrize("face", FACES)
def test_a_4xx_is_a_model_error_at_once(face: str, scripted: Scripted) -> None:
    scripted.script(Answer(400, b'{"error": "max_tokens must be positive"}'), ok())
    with pytest.raises(ModelError, match=r"refused the request \(HTTP 400\).*max_tokens must be positive"):
        call(face, quick(scripted.url, retries=3), "complete", "x")
    assert len(scripted.seen) == 1


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (Answer(body=b"<html>oops</html>"), "not JSON"),
        (Answer(body=b"[1, 2]"), "not an object"),
        (Answer(body=b'{"choices": []}'), r"without choices\[0\]"),
        (Answer(body=b'{"choices": [{"text": 7}]}'), "not a string"),
        (Answer(body=b'{"choices": [{"text": "x"}], "usage": {"prompt_tokens": "many"}}'), "usage"),
    ],
)
def test_a_malformed_answer_is_a_model_error(
    face: str, answer: Answer, says: str, scripted: Scripted
) -> None:
    scripted.script(answer)
    with pytest.raises(ModelError, match=says):
        call(face, quick(scripted.url), "complete", "x")
    assert len(scripted.seen) == 1  # a malformed answer is not retried


@pytest.mark.parametrize("face", FACES)
def test_chat_answers_refusals_and_projection_to_the_labels(face: str, scripted: Scripted) -> None:
    messages = [{"role": "user", "content": "x"}]
    scripted.script(chat_ok({"role": "assistant", "content": None, "refusal": "I can't help with that"}))
    with pytest.raises(ModelError, match="refused: I can't help with that"):
        call(face, quick(scripted.url), "chat", messages)
    scripted.script(chat_ok({"role": "assistant"}))
    assert call(face, quick(scripted.url), "chat", messages).text == ""  # said nothing
    scripted.script(chat_ok({"role": "assistant", "content": 3}))
    with pytest.raises(ModelError, match="not a string"):
        call(face, quick(scripted.url), "chat", messages)
    scripted.script(ok(" lost or stolen card\nmore"))
    assert call(face, quick(scripted.url), "complete", "x", choices=LABELS).text == "lost_or_stolen_card"


@pytest.mark.parametrize("face", FACES)
def test_extra_fields_reach_the_server_under_the_calls_own(face: str, scripted: Scripted) -> None:
    scripted.script(ok())
    model = quick(scripted.url, api_key="sk-1", extra_body={"grammar": "root ::= x", "seed": 1})
    extra = {"top_p": 0.5, "seed": 7, "model": "other", "max_tokens": 9}
    call(face, model, "complete", "p", max_tokens=4, stop=["\n"], extra=extra)
    _, _, body, headers = scripted.seen[0]
    assert body == {
        "grammar": "root ::= x",
        "seed": 7,  # the call's extra over the client's
        "top_p": 0.5,
        "model": "m",  # the call's own fields over both
        "max_tokens": 4,
        "temperature": 0.0,
        "stop": ["\n"],
        "prompt": "p",
    }
    assert headers["Authorization"] == "Bearer sk-1"


def test_a_stream_gives_its_deltas_then_the_whole_answer_with_usage(scripted: Scripted) -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
    ]
    scripted.script(Answer(503, b"busy"), Answer(body=sse(*chunks), content_type="text/event-stream"))
    messages = [{"role": "user", "content": "hi"}]
    *deltas, final = stream(quick(scripted.url, retries=1), messages, max_tokens=5, extra={"seed": 3})
    assert deltas == ["Hel", "lo"]  # retried before the first byte
    assert final == Completion("Hello", 9, 2, final.seconds, finish_reason="length")
    _, path, body, _ = scripted.seen[-1]
    assert path == "/v1/chat/completions" and body["stream"] is True and body["seed"] == 3
    assert body["stream_options"] == {"include_usage": True} and body["messages"] == messages
    completion_chunks = [{"choices": [{"text": t, "finish_reason": None}]} for t in ("a", "b", "c")]
    scripted.script(Answer(body=sse(*completion_chunks), content_type="text/event-stream"))
    *deltas, final = stream(quick(scripted.url), "prompt")
    assert deltas == ["a", "b", "c"] and isinstance(final, Completion)
    assert (final.text, final.prompt_tokens, final.completion_tokens) == ("abc", 0, 3)  # no usage: deltas
    assert final.finish_reason is None and scripted.seen[-1][1] == "/v1/completions"


def test_a_stream_that_breaks_after_its_first_byte_is_not_replayed(scripted: Scripted) -> None:
    first = {"choices": [{"text": "part", "finish_reason": None}]}
    scripted.script(Answer(body=sse(first, done=False), content_type="text/event-stream", cut=True), ok())
    with pytest.raises(ModelError, match="the stream broke: RemoteProtocolError"):
        stream(quick(scripted.url, retries=3), "prompt")
    assert len(scripted.seen) == 1
    error = {"error": {"message": "out of memory"}}
    scripted.script(Answer(body=sse(first, error), content_type="text/event-stream"))
    with pytest.raises(ModelError, match=r"stopped its stream with an error.*out of memory"):
        stream(quick(scripted.url), "prompt")
    scripted.script(Answer(body=b"data: {not json\n\n", content_type="text/event-stream"))
    with pytest.raises(ModelError, match="streamed something that is not JSON"):
        stream(quick(scripted.url), "prompt")


@pytest.mark.parametrize("face", FACES)
def test_the_model_check_reads_the_served_models(face: str, scripted: Scripted) -> None:
    scripted.script(models("only"))
    model = OpenAICompatible(scripted.url)
    assert model.name == "default" and call(face, model, "check") == "only"
    assert model.model == model.name == "only" and scripted.seen[0][:2] == ("GET", "/v1/models")
    scripted.script(models("a", "b"))
    with pytest.raises(InvalidInput, match=r"serves 2 models \(a, b\); say which with --model") as info:
        call(face, OpenAICompatible(scripted.url), "check")
    assert info.value.field == "--model"
    scripted.script(models("a", "b"))
    with pytest.raises(InvalidInput, match=r"does not serve 'c'; it serves a, b"):
        call(face, OpenAICompatible(scripted.url, model="c"), "check")
    scripted.script(Answer(body=b'{"models": []}'))
    with pytest.raises(ModelError, match="not answer with an OpenAI model list"):
        call(face, OpenAICompatible(scripted.url, model="c"), "check")


def test_the_service_upstream_is_the_async_face(scripted: Scripted) -> None:
    chunks = [{"choices": [{"delta": {"content": t}, "finish_reason": None}]} for t in ("o", "k")]

    async def run() -> tuple[str, Completion, list[str | Completion]]:
        upstream = HttpUpstream(scripted.url, retries=1, backoff=0.01)
        try:
            await upstream.check()
            done = await upstream.complete(Call("p", 4, extra={"top_p": 0.9}))
            chat = Call(({"role": "user", "content": "x"},), 4)
            return upstream.name, done, [piece async for piece in upstream.stream(chat)]
        finally:
            await upstream.aclose()

    scripted.script(
        models("served"),
        Answer(503, b"busy"),
        ok("done", (2, 1), finish="length"),
        Answer(body=sse(*chunks), content_type="text/event-stream"),
    )
    name, done, pieces = asyncio.run(run())
    assert name == "served" and (done.text, done.prompt_tokens, done.finish_reason) == ("done", 2, "length")
    assert pieces[:2] == ["o", "k"] and isinstance(pieces[2], Completion) and pieces[2].text == "ok"
    assert pieces[2].finish_reason is None  # the server gave none (the service then says "stop")
    bodies = [body for _, _, body, _ in scripted.seen]
    assert bodies[2]["top_p"] == 0.9 and bodies[2]["model"] == "served" and len(bodies) == 4
    with pytest.raises(InvalidInput, match="upstream"):
        HttpUpstream("localhost:8000")


# ---------------------------------------------------------------- the embedder


def test_minilm_gives_unit_vectors_that_know_paraphrases() -> None:
    embedder = MiniLM()
    v = embedder.embed(
        ["my card has not arrived", "the card I ordered never came", "what is the exchange rate"]
    )
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert embedder.embed([]).shape == (0, 384)
