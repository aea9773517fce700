"""`lifelong serve` end to end: the real server process, the real llama.cpp upstream, the official
`openai` client, and a real SQLite log on disk."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from _service import Service, free_port, lifelong, start_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(llama_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("serve")
    s = start_service(
        folder, "--upstream", llama_upstream, "--model", "gemma", "--max-tokens", "32", "--rate-limit", "0"
    )
    yield s
    s.stop()


def openai_client(service: Service, tenant: str = "acme") -> OpenAI:
    return OpenAI(base_url=service.url + "/v1", api_key=service.key(tenant), max_retries=0)


def test_the_official_openai_client_works_unchanged(service: Service) -> None:
    client = openai_client(service)
    chat = client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, user="ada"
    )
    assert chat.object == "chat.completion" and isinstance(chat.choices[0].message.content, str)
    assert chat.usage is not None and chat.usage.prompt_tokens > 0
    text = client.completions.create(model="anything", prompt="def add(a, b):\n    return", max_tokens=6)
    assert text.object == "text_completion" and text.choices[0].text.strip()
    chunks = list(
        client.chat.completions.create(
            model="anything",
            messages=[{"role": "user", "content": "Count to three."}],
            max_tokens=8,
            stream=True,
            user="ada",
        )
    )
    ids = {chunk.id for chunk in chunks}
    # Gemma 270M is a base model: under its chat template it often ends its turn at once, so the
    # stream may carry no text; its shape is what is checked (role first, finish reason last).
    assert len(ids) == 1 and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].model_extra is not None and chunks[-1].model_extra["lifelong"]["interaction_id"] in ids
    streamed = list(
        client.completions.create(model="x", prompt="import os\nimport", max_tokens=4, stream=True)
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices).strip()
    with service.client("acme") as http:  # every answer is a logged interaction, the stream's too
        for interaction_id in (chat.id, text.id, ids.pop(), streamed[-1].id):
            got = http.get(f"/v1/interactions/{interaction_id}")
            assert got.status_code == 200, got.text
        raw = http.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        )
        assert raw.headers["x-lifelong-interaction"] == raw.json()["id"]


def test_feedback_on_an_interaction_changes_what_the_next_call_recalls(service: Service) -> None:
    client = openai_client(service)
    question = "Which port does our staging database listen on?"
    first = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": question}], max_tokens=16, user="bo"
    )
    assert first.model_extra is not None and first.model_extra["lifelong"]["recalled"] == []
    with service.client("acme") as http:
        answer = http.post(
            "/v1/feedback", json={"interaction_id": first.id, "correction": "Port 6543.", "accept": False}
        )
        assert answer.status_code == 200, answer.text
    second = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Which port does the staging database listen on?"}],
        max_tokens=16,
        user="bo",
    )
    recalled = second.model_extra["lifelong"]["recalled"]  # type: ignore[index]
    assert any("Port 6543." in r["text"] and r["learner"] == "examples" for r in recalled), recalled
    # a lesson rules out a wrong answer; a blank one (a base model often ends its turn at once) is no answer
    answered = bool((first.choices[0].message.content or "").strip())
    assert any(r["learner"] == "lessons" for r in recalled) == answered, recalled
    with service.client("acme") as http:
        logged = http.get(f"/v1/interactions/{second.id}").json()
    assert logged["recalled"]["acme/examples"], logged  # the log says what was recalled
    assert logged["shadow_asked"]  # the frozen shadow answered the same request without it


def test_feedback_is_idempotent_by_its_id_and_refuses_a_reused_id(service: Service) -> None:
    with service.client("acme") as http:
        made = http.post(
            "/v1/completions", json={"model": "m", "prompt": "x = 1\ny =", "max_tokens": 3}
        ).json()
        body = {"interaction_id": made["id"], "accept": True, "feedback_id": "fb-1"}
        first, again = http.post("/v1/feedback", json=body), http.post("/v1/feedback", json=body)
        assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
        other = http.post("/v1/feedback", json={**body, "accept": False})
        assert other.status_code == 409 and "fb-1" in other.json()["error"]["message"]
        feedback = http.get(f"/v1/interactions/{made['id']}").json()["feedback"]
    assert [f["kind"] for f in feedback] == ["accept"]
    with sqlite3.connect(service.data_dir / "lifelong.db") as db:
        assert db.execute("SELECT COUNT(*) FROM feedback WHERE id LIKE 'fb-1.%'").fetchone()[0] == 1


def test_memories_ingest_a_conversation_as_linked_turns(service: Service) -> None:
    turns = [
        {"role": "user", "name": "Caroline", "content": "I went to the LGBTQ support group yesterday."},
        {"role": "assistant", "name": "Melanie", "content": "How did it go?"},
        {"role": "user", "name": "Caroline", "content": "It was powerful, I felt accepted."},
    ]
    with service.client("acme") as http:
        add = http.post(
            "/v1/memories", json={"user_id": "cal", "thread": "chat-1", "time": 1683554160, "messages": turns}
        )
        assert add.status_code == 200, add.text
        made = add.json()["results"]
        assert [m["memory"] for m in made] == [f"{t['name']}: {t['content']}" for t in turns]
        assert {m["created_at"] for m in made} == {1683554160.0}
        found = http.get(
            "/v1/memories/search",
            params={"query": "How did Caroline feel at the support group?", "user_id": "cal", "limit": 5},
        ).json()["results"]
        assert len(found) == 3 and {r["thread"] for r in found} == {"chat-1"}
        blank = http.post(
            "/v1/memories",
            json={"user_id": "cal", "thread": "t", "messages": [{"role": "user", "content": " "}]},
        )
        assert blank.status_code == 422 and blank.json()["error"]["param"] == "messages[0].content"
        orphan = http.post("/v1/memories", json={"user_id": "cal", "thread": "t", "text": "hi"})
        assert orphan.status_code == 422
        assert len(http.get("/v1/memories", params={"user_id": "cal"}).json()["results"]) == 3
    with service.client("other") as http:  # another tenant sees none of it
        assert (
            http.get("/v1/memories/search", params={"query": "support group", "user_id": "cal"}).json()[
                "results"
            ]
            == []
        )


def test_a_memory_retired_with_a_reason_stays_out_and_other_tenants_cannot_touch_it(service: Service) -> None:
    with service.client("acme") as http:
        first = http.post(
            "/v1/memories", json={"user_id": "di", "text": "Di lives in Rome", "key": "city", "time": 100}
        )
        http.post(
            "/v1/memories", json={"user_id": "di", "text": "Di lives in Oslo", "key": "city", "time": 200}
        )
        wrong = http.post("/v1/memories", json={"user_id": "di", "text": "Di is allergic to cats"}).json()
        memory_id = wrong["results"][0]["id"]
        then = http.get(
            "/v1/memories/search", params={"query": "where does Di live", "user_id": "di", "as_of": 150}
        )
        assert [r["memory"] for r in then.json()["results"]] == ["Di lives in Rome"]
        rome = first.json()["results"][0]["id"]
        assert (
            http.get("/v1/memories/search", params={"query": "city", "user_id": "di", "as_of": 250}).json()[
                "results"
            ][0]["memory"]
            == "Di lives in Oslo"
        )
    with service.client("other") as http:  # another tenant: as unknown as a made-up id
        assert http.post(f"/v1/memories/{memory_id}/retire", json={"reason": "mine now"}).status_code == 404
    with service.client("acme") as http:
        assert http.post(f"/v1/memories/{memory_id}/retire", json={"reason": " "}).status_code == 422
        assert (
            http.post(f"/v1/memories/{rome}/retire", json={"reason": "old"}).status_code == 409
        )  # superseded
        done = http.post(f"/v1/memories/{memory_id}/retire", json={"reason": "it was her sister"})
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["reason"]) == ("retired", "it was her sister")
        assert done.json()["valid_to"] is not None
        http.post("/v1/memories", json={"user_id": "di", "text": "Di is allergic to cats"})  # said again
        found = http.get(
            "/v1/memories/search", params={"query": "allergic to cats", "user_id": "di", "limit": 10}
        )
        assert all("allergic" not in r["memory"] for r in found.json()["results"])


def test_memories_search_provenance_and_forgetting_a_user(service: Service) -> None:
    with service.client("acme") as http:
        add = http.post("/v1/memories", json={"user_id": "cy", "text": "Cy lives in Lisbon", "key": "city"})
        assert add.status_code == 200, add.text
        http.post("/v1/memories", json={"user_id": "cy", "text": "Cy lives in Porto", "key": "city"})
        http.post(
            "/v1/memories",
            json={
                "user_id": "cy",
                "messages": [
                    {"role": "user", "content": "I drink green tea"},
                    {"role": "assistant", "content": "noted"},
                ],
            },
        )
        found = http.get(
            "/v1/memories/search", params={"query": "where does Cy live?", "user_id": "cy"}
        ).json()
        texts = [r["memory"] for r in found["results"]]
        assert "Cy lives in Porto" in texts and "Cy lives in Lisbon" not in texts  # superseded by key
        listed = http.get("/v1/memories", params={"user_id": "cy"}).json()["results"]
        assert sorted(m["memory"] for m in listed) == ["Cy lives in Porto", "I drink green tea"]
        for memory in listed:  # provenance: each item names the interactions it came from, and they exist
            assert memory["sources"] and all(
                http.get(f"/v1/interactions/{i}").status_code == 200 for i in memory["sources"]
            )
        chat = http.post(
            "/v1/chat/completions",
            json={
                "model": "m",
                "user": "cy",
                "max_tokens": 4,
                "messages": [{"role": "user", "content": "Where do I live?"}],
            },
        )
        assert any(r["text"] == "Cy lives in Porto" for r in chat.json()["lifelong"]["recalled"])
        gone = http.delete("/v1/users/cy")
        assert gone.status_code == 200 and gone.json()["clean"], gone.text
        assert gone.json()["forgotten"]["interactions_deleted"] >= 4
        assert http.get("/v1/memories", params={"user_id": "cy"}).json()["results"] == []
        assert http.get(f"/v1/interactions/{chat.json()['id']}").status_code == 404
    raw = (service.data_dir / "lifelong.db").read_bytes()
    assert b"Lisbon" not in raw and b"Porto" not in raw  # the bytes left the database file


def test_versions_commit_diff_promote_and_rollback(service: Service) -> None:
    with service.client("versions") as http:
        http.post("/v1/memories", json={"user_id": "di", "text": "Di prefers metric units"})
        v1 = http.post("/v1/learners/memory/versions", json={"message": "first"}).json()["version"]
        assert http.post("/v1/learners/memory/promote", json={"version": v1}).json()["promoted"] == v1
        http.post("/v1/memories", json={"user_id": "di", "text": "Di works night shifts"})
        v2 = http.post("/v1/learners/memory/versions", json={"message": "second"}).json()["version"]
        http.post("/v1/learners/memory/promote", json={"version": v2})
        changes = http.get("/v1/learners/memory/diff", params={"a": v1, "b": v2}).json()["changes"]
        assert any(c["key"] == "state.items" for c in changes)
        assert len(http.get("/v1/memories", params={"user_id": "di"}).json()["results"]) == 2
        back = http.post("/v1/learners/memory/rollback", json={})
        assert back.json()["promoted"] == v1
        assert [
            m["memory"] for m in http.get("/v1/memories", params={"user_id": "di"}).json()["results"]
        ] == ["Di prefers metric units"]
        listing = {row["name"]: row for row in http.get("/v1/learners").json()["data"]}
        assert listing["memory"]["promoted"] == v1 and listing["memory"]["versions"] == 2
        history = http.get("/v1/learners/memory/versions").json()["history"]
        assert [h["action"] for h in history][-1] == "rollback"
        assert http.post("/v1/learners/nonsense/versions", json={}).status_code == 404
        assert http.post("/v1/learners/memory/promote", json={"version": 99}).status_code == 404


def test_learning_metrics_count_served_and_shadow_answers(service: Service) -> None:
    with service.client("metrics") as http:
        ids = []
        for n in range(4):
            r = http.post(
                "/v1/completions", json={"model": "m", "prompt": f"# note {n}\nx =", "max_tokens": 2}
            )
            ids.append(r.json()["id"])
        for n, interaction_id in enumerate(ids):
            http.post("/v1/feedback", json={"interaction_id": interaction_id, "accept": n % 2 == 0})
        curve = http.get("/v1/learning", params={"window": 2}).json()
    assert curve["judged"] == 4 and curve["served"] == 0.5 and len(curve["points"]) == 2
    assert curve["paired"] == 4  # nothing recalled yet: the shadow's answer is the served one


def test_keys_auth_and_admin(service: Service) -> None:
    no_key = httpx.post(service.url + "/v1/feedback", json={"interaction_id": "x", "accept": True})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    bad = httpx.get(
        service.url + "/v1/learners", headers={"Authorization": "Bearer ll_000000000000_" + "a" * 43}
    )
    assert bad.status_code == 401
    key = service.key("revoked-co")
    live = httpx.get(service.url + "/v1/learners", headers={"Authorization": f"Bearer {key}"})
    assert live.status_code == 200, live.text
    listed = lifelong("keys", "list", "--data-dir", str(service.data_dir))
    key_id = key.split("_")[1]
    assert key_id in listed.stdout and key not in listed.stdout  # the secret is never shown again
    assert lifelong("keys", "revoke", key_id, "--data-dir", str(service.data_dir)).returncode == 0
    time.sleep(2.1)  # the verification cache's bound
    assert (
        httpx.get(service.url + "/v1/learners", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    )
    tenant = {"Authorization": f"Bearer {service.key('acme')}"}
    assert httpx.get(service.url + "/v1/tenants", headers=tenant).status_code == 403
    acting = httpx.get(service.url + "/v1/learners", headers={**tenant, "X-Lifelong-Tenant": "metrics"})
    assert acting.status_code == 403
    admin = {"Authorization": f"Bearer {service.key('ops', admin=True)}"}
    tenants = {t["tenant"] for t in httpx.get(service.url + "/v1/tenants", headers=admin).json()["data"]}
    assert {"acme", "metrics"} <= tenants
    as_metrics = httpx.get(service.url + "/v1/learning", headers={**admin, "X-Lifelong-Tenant": "metrics"})
    assert as_metrics.json()["judged"] == 4


def test_bad_requests_get_4xx_naming_the_field(service: Service) -> None:
    with service.client("acme") as http:
        missing = http.post("/v1/chat/completions", json={"model": "m"})
        assert missing.status_code == 422 and missing.json()["error"]["param"] == "messages"
        role = http.post(
            "/v1/chat/completions", json={"model": "m", "messages": [{"role": "wizard", "content": "x"}]}
        )
        assert role.status_code == 422 and "messages.0.role" in role.json()["error"]["message"]
        too_many = http.post("/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 10_000})
        assert too_many.status_code == 422 and too_many.json()["error"]["param"] == "max_tokens"
        assert http.post("/v1/feedback", json={"interaction_id": "x"}).status_code == 422
        bad_json = http.post(
            "/v1/feedback", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert bad_json.status_code == 422
        huge = http.post(
            "/v1/memories", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413
        chunked = http.post(
            "/v1/memories",
            content=iter([b"x" * 600_000, b"y" * 600_000]),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
        user = http.post("/v1/completions", json={"model": "m", "prompt": "x", "user": "a\x00b"})
        assert user.status_code == 422


def test_operations_endpoints(service: Service) -> None:
    assert httpx.get(service.url + "/healthz").json()["status"] == "ok"
    metrics = httpx.get(service.url + "/metrics").text
    assert "lifelong_requests_total" in metrics and "lifelong_proxy_overhead_seconds" in metrics
    assert "acme" not in metrics  # no tenant names in labels
    assert httpx.get(service.url + "/docs").status_code == 200
    spec = httpx.get(service.url + "/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/feedback", "/v1/memories/search"} <= set(spec["paths"])
    assert "<svg" in httpx.get(service.url + "/dashboard").text


def test_rate_limits_answer_429_with_retry_after(llama_upstream: str, tmp_path: Path) -> None:
    s = start_service(tmp_path, "--upstream", llama_upstream, "--embedder", "hashing", "--rate-limit", "2")
    try:
        with s.client("acme") as http:
            codes = [http.get("/v1/learners").status_code for _ in range(8)]
            assert 429 in codes and codes[0] == 200
            limited = http.get("/v1/learners")
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    finally:
        s.stop()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--log", "ftp://example.org/x"], "--log"),
        (["--upstream", "not-a-url"], "--upstream"),
        (["--upstream", "http://127.0.0.1:9/v1"], "cannot reach"),
        (["--model", "gemma"], "--model"),
        (["--log", "postgresql://127.0.0.1:9/nothing"], "cannot reach"),
        (["--shadow-rate", "3"], "--shadow-rate"),
    ],
)
def test_start_up_errors_exit_2_with_one_line(flags: list[str], says: str, tmp_path: Path) -> None:
    done = lifelong("serve", "--data-dir", str(tmp_path), "--port", str(free_port()), *flags, timeout=60)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("lifelong: error:")]
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_an_upstream_model_it_does_not_serve_is_named(llama_upstream: str, tmp_path: Path) -> None:
    done = lifelong("serve", "--data-dir", str(tmp_path), "--upstream", llama_upstream, "--model", "gpt-9")
    assert done.returncode == 2 and "gemma" in done.stderr and "gpt-9" in done.stderr, done.stderr


def test_the_log_survives_as_json(service: Service) -> None:
    """Every interaction the service logged is a valid record that `lifelong log export` reads back."""
    out = service.data_dir / "export.jsonl"
    done = lifelong("log", "export", str(service.data_dir / "lifelong.db"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all("observation" in r for r in rows)
