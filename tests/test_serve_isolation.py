"""Tenant isolation of `lifelong serve`, tried as an attacker would: every endpoint with another tenant's
ids and names, and with no key, a bad key, a revoked key. A leak is any answer that shows, changes or
confirms the existence of the other tenant's data."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from _service import Service, quick_flags, start_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(llama_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = start_service(
        tmp_path_factory.mktemp("isolation"),
        *quick_flags(llama_upstream),
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def victim(service: Service) -> dict[str, str]:
    """What tenant acme holds: an interaction with feedback, a memory of user ada, a committed version."""
    with service.client("acme") as http:
        chat = http.post(
            "/v1/completions", json={"model": "m", "prompt": "The secret is", "max_tokens": 2, "user": "ada"}
        ).json()
        http.post("/v1/feedback", json={"interaction_id": chat["id"], "correction": "acme-secret-answer"})
        memory = http.post("/v1/memories", json={"user_id": "ada", "text": "Ada's acme PIN is 4321"}).json()
        version = http.post("/v1/learners/memory/versions", json={"message": "acme"}).json()["version"]
        http.post("/v1/learners/memory/promote", json={"version": version})
    return {
        "interaction": chat["id"],
        "memory": memory["results"][0]["id"],
        "user": "ada",
        "version": str(version),
    }


def test_another_tenant_sees_changes_and_confirms_nothing(service: Service, victim: dict[str, str]) -> None:
    leaks: list[str] = []
    with service.client("globex") as http:
        missing = http.get("/v1/interactions/no-such-id").json()
        got = http.get(f"/v1/interactions/{victim['interaction']}")
        if got.status_code != 404 or got.json()["error"]["type"] != missing["error"]["type"]:
            leaks.append(f"GET interaction: {got.status_code}")
        if got.json()["error"]["message"] != f"no interaction {victim['interaction']!r}":
            leaks.append("GET interaction: the message differs from a missing id's")
        fb = http.post("/v1/feedback", json={"interaction_id": victim["interaction"], "accept": True})
        if fb.status_code != 404:
            leaks.append(f"POST feedback on acme's interaction: {fb.status_code}")
        fb_id = http.post(
            "/v1/feedback", json={"interaction_id": victim["interaction"], "reward": 1.0, "feedback_id": "x"}
        )
        if fb_id.status_code != 404:
            leaks.append(f"POST feedback with an id: {fb_id.status_code}")
        for path, params in [
            ("/v1/memories/search", {"query": "PIN", "user_id": "ada"}),
            ("/v1/memories", {"user_id": "ada"}),
            ("/v1/memories", {}),
        ]:
            found = http.get(path, params=params).json()["results"]
            if found:
                leaks.append(f"{path} {params}: {found}")
        chat = http.post(
            "/v1/completions", json={"model": "m", "prompt": "The secret is", "max_tokens": 2, "user": "ada"}
        ).json()
        if chat["lifelong"]["recalled"]:
            leaks.append(f"proxy recalled acme's items: {chat['lifelong']['recalled']}")
        for row in http.get("/v1/learners").json()["data"]:
            if row["items"] or row["versions"] or row["promoted"] is not None:
                leaks.append(f"learners: {row}")
        versions = http.get("/v1/learners/memory/versions").json()
        if versions["versions"] or versions["history"]:
            leaks.append(f"versions: {versions}")
        for method, path, body in [
            ("POST", "/v1/learners/memory/promote", {"version": int(victim["version"])}),
            ("POST", "/v1/learners/memory/rollback", {}),
            ("GET", f"/v1/learners/memory/diff?a={victim['version']}&b={victim['version']}", None),
        ]:
            answer = http.request(method, path, json=body)
            if answer.status_code < 400:
                leaks.append(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
        recent = http.get("/v1/interactions").json()["data"]
        if any(r["id"] == victim["interaction"] for r in recent):
            leaks.append("recent interactions list acme's")
        if http.get("/v1/learning").json()["judged"] != 0:
            leaks.append("learning curve counts acme's feedback")
        if http.get("/v1/tenants").status_code != 403:
            leaks.append("a tenant key lists tenants")
        if http.get("/v1/learners", headers={"X-Lifelong-Tenant": "acme"}).status_code != 403:
            leaks.append("a tenant key acts for another tenant")
        erased = http.delete("/v1/users/ada").json()["forgotten"]  # globex's user ada: none
        if erased["interactions_deleted"] != 1:  # only globex's own request above
            leaks.append(f"DELETE user: {erased}")
    with service.client("acme") as http:  # acme's data is untouched by all of the above
        assert http.get(f"/v1/interactions/{victim['interaction']}").status_code == 200
        assert [m["id"] for m in http.get("/v1/memories", params={"user_id": "ada"}).json()["results"]] == [
            victim["memory"]
        ]
        assert http.get("/v1/learners/memory/versions").json()["promoted"] == int(victim["version"])
        kinds = [f["kind"] for f in http.get(f"/v1/interactions/{victim['interaction']}").json()["feedback"]]
        assert kinds == ["correction"]
    assert leaks == []


def test_keys_that_are_not_a_tenants_get_nothing(service: Service, victim: dict[str, str]) -> None:
    fake = [
        None,
        "",
        "Bearer",
        "ll_short",
        "ll_" + "0" * 12 + "_" + "A" * 43,
        service.key("acme")[:-1] + "x",
        service.key("acme") + "x",
        "sk-" + "a" * 48,
        "' OR 1=1 --",
    ]
    for key in fake:
        headers = {} if key is None else {"Authorization": f"Bearer {key}".strip()}
        for method, path in [
            ("GET", f"/v1/interactions/{victim['interaction']}"),
            ("GET", "/v1/learners"),
            ("GET", "/v1/memories?user_id=ada"),
            ("DELETE", "/v1/users/ada"),
            ("POST", "/v1/learners/memory/rollback"),
        ]:
            answer = httpx.request(
                method, service.url + path, headers=headers, json={} if method == "POST" else None
            )
            assert answer.status_code == 401, (key, method, path, answer.status_code)
    with service.client("acme") as http:
        assert http.get("/v1/memories", params={"user_id": "ada"}).json()["results"]  # nothing was erased


def test_user_names_cannot_escape_their_scope(service: Service, victim: dict[str, str]) -> None:
    with service.client("globex") as http:
        for user in ["ada\x00", "../acme", "ada' OR '1'='1", "%", "*", "a" * 300]:
            answer = http.get("/v1/memories/search", params={"query": "PIN", "user_id": user})
            assert answer.status_code in (200, 422) and (
                answer.status_code == 422 or not answer.json()["results"]
            )
            gone = http.delete("/v1/users/" + quote(user, safe=""))
            assert gone.status_code in (200, 404, 422)
    with service.client("acme") as http:
        assert http.get("/v1/memories", params={"user_id": "ada"}).json()["results"]
