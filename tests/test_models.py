"""The real models: llama.cpp Gemma 3 270M in-process, the OpenAI-compatible backend against a real local
llama.cpp server, and the MiniLM embedder. Nothing here is mocked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from lifelong.errors import BackendUnavailable, InvalidInput, ModelError
from lifelong.models import LlamaCpp, MiniLM, OpenAICompatible, default_gguf
from lifelong.models.openai_compat import closest

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


# ---------------------------------------------------------------- the embedder


def test_minilm_gives_unit_vectors_that_know_paraphrases() -> None:
    embedder = MiniLM()
    v = embedder.embed(
        ["my card has not arrived", "the card I ordered never came", "what is the exchange rate"]
    )
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert embedder.embed([]).shape == (0, 384)
