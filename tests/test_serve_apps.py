"""Apps through `lifelong serve`: a tenant declares what an app asks, and every request of the app runs the
learners that fit — the real server process, the real llama.cpp upstream, the official `openai` client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from _service import Service, lifelong, quick_flags, start_service

pytestmark = pytest.mark.slow

LABELS = ["card_arrival", "change_pin", "lost_or_stolen_card", "top_up_failed"]


@pytest.fixture(scope="module")
def service(llama_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = start_service(tmp_path_factory.mktemp("apps"), *quick_flags(llama_upstream))
    yield s
    s.stop()


def declare(http: httpx.Client, name: str, task: str, **fields: object) -> httpx.Response:
    return http.post("/v1/apps", json={"name": name, "task": task, **fields})


def openai_client(service: Service, tenant: str) -> OpenAI:
    return OpenAI(base_url=service.url + "/v1", api_key=service.key(tenant), max_retries=0)


def ask(client: OpenAI, app: str, text: str, user: str = "ada") -> tuple[str, str]:
    reply = client.chat.completions.create(
        model=app, messages=[{"role": "user", "content": text}], max_tokens=4, user=user
    )
    return reply.choices[0].message.content or "", reply.id


def test_an_app_is_declared_once_and_named_by_the_model_field(service: Service) -> None:
    with service.client("acme") as http:
        made = declare(http, "intents", "label", labels=LABELS)
        assert made.status_code == 200 and made.json()["changed"], made.text
        assert not declare(http, "intents", "label", labels=LABELS).json()["changed"]  # the same spec
        assert [a["name"] for a in http.get("/v1/apps").json()["data"]] == ["intents"]
        assert {"intents"} <= {m["id"] for m in http.get("/v1/models").json()["data"]}
    client = openai_client(service, "acme")
    label, interaction_id = ask(client, "intents", "I still have not received my new card")
    assert label in LABELS  # a label app answers with one of its labels, whatever the model says
    with service.client("acme") as http:
        logged = http.get(f"/v1/interactions/{interaction_id}").json()
        assert logged["app"] == "intents" and logged["answer"] == label
        assert logged["shadow"] in LABELS  # the frozen shadow answered the same request, zero-shot
        learners = {
            row["name"]: row for row in http.get("/v1/learners", params={"app": "intents"}).json()["data"]
        }
    assert {"examples", "OnlineSoftmax", "Prototypes", "EmbeddingSoftmax", "combiner", "harness"} <= set(
        learners
    )
    undeclared = {
        row["name"]
        for row in httpx.get(
            service.url + "/v1/learners", headers={"Authorization": f"Bearer {service.key('acme')}"}
        ).json()["data"]
    }
    assert undeclared == {"memory", "examples", "lessons"}  # requests that name no app: as before apps


def test_a_label_app_learns_from_corrections(service: Service) -> None:
    queries = {
        "my card got stolen on the train": "lost_or_stolen_card",
        "how do I set a new PIN for my card": "change_pin",
        "the top up of my account did not go through": "top_up_failed",
    }
    with service.client("learns") as http:
        declare(http, "routing", "label", labels=LABELS)
        client = openai_client(service, "learns")
        rounds = []
        for _ in range(3):  # each answer corrected: the experts learn the labels, the mixture whom to trust
            served = {}
            for text, right in queries.items():
                served[text], interaction_id = ask(client, "routing", text)
                done = http.post("/v1/feedback", json={"interaction_id": interaction_id, "correction": right})
                assert done.status_code == 200, done.text
            rounds.append(served)
        logged = http.get(f"/v1/interactions/{interaction_id}").json()
        curve = http.get("/v1/learning", params={"app": "routing", "window": 3}).json()
    assert logged["proposals"]["nearest"][0][0] == "top_up_failed"  # every expert's proposal is logged
    assert rounds[-1] == queries, rounds  # by the third round every corrected question gets its label
    assert curve["app"] == "routing" and curve["judged"] == 9 and curve["points"][-1]["served"] == 1.0


def test_a_chat_app_serves_the_corrected_answer_once_its_gate_trusts_it(service: Service) -> None:
    """The direct answer — the corrected answer of a question like this one — competes with the model's
    answer in the gate; once the gate has seen such answers be right (and within its budget of
    misapplied corrections), a repeated question gets it even though the model never says it."""
    with service.client("support") as http:
        declare(http, "help", "chat")
        client = openai_client(service, "support")
        facts = {
            f"Which port does service number {n} listen on?": f"Service {n} listens on port {8000 + n}."
            for n in range(8)
        }
        for _ in range(4):  # the gate serves recalled answers once 20 of them were seen to be right
            for question, answer in facts.items():
                served, interaction_id = ask(client, "help", question)
                body = {"interaction_id": interaction_id, "accept": served == answer}
                if served != answer:
                    body["correction"] = answer
                http.post("/v1/feedback", json=body)
        served, interaction_id = ask(client, "help", "Which port does service number 3 listen on?")
        logged = http.get(f"/v1/interactions/{interaction_id}").json()
    sources = {c["action"]: c["features"] for c in (logged.get("gate") or [])} if "gate" in logged else {}
    assert served == "Service 3 listens on port 8003.", (served, sources)


def test_apps_belong_to_their_tenant(service: Service) -> None:
    with service.client("owner") as http:
        declare(http, "private", "label", labels=LABELS)
        _, interaction_id = ask(openai_client(service, "owner"), "private", "my card is lost")
        http.post(
            "/v1/feedback", json={"interaction_id": interaction_id, "correction": "lost_or_stolen_card"}
        )
    with service.client("other") as http:
        named = http.post(
            "/v1/chat/completions",
            headers={"X-Lifelong-App": "private"},
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        )
        assert named.status_code == 404 and named.json()["error"]["param"] == "X-Lifelong-App"
        assert http.get("/v1/apps/private").status_code == 404
        assert http.get("/v1/learners", params={"app": "private"}).status_code == 404
        # the same name in another tenant is another app, with nothing learned
        declare(http, "private", "label", labels=LABELS)
        rows = {r["name"]: r for r in http.get("/v1/learners", params={"app": "private"}).json()["data"]}
        assert rows["examples"]["items"] == 0 and rows["OnlineSoftmax"]["version"] == 0


def test_versions_promote_and_roll_back_per_app(service: Service) -> None:
    with service.client("versioned") as http:
        declare(http, "intents", "label", labels=LABELS)
        client = openai_client(service, "versioned")
        _, first = ask(client, "intents", "where is my card")
        http.post("/v1/feedback", json={"interaction_id": first, "correction": "card_arrival"})
        v1 = http.post("/v1/learners/examples/versions", params={"app": "intents"}, json={}).json()["version"]
        http.post("/v1/learners/examples/promote", params={"app": "intents"}, json={"version": v1})
        _, second = ask(client, "intents", "I want to change my PIN")
        http.post("/v1/feedback", json={"interaction_id": second, "correction": "change_pin"})
        v2 = http.post("/v1/learners/examples/versions", params={"app": "intents"}, json={}).json()["version"]
        http.post("/v1/learners/examples/promote", params={"app": "intents"}, json={"version": v2})
        back = http.post("/v1/learners/examples/rollback", params={"app": "intents"}, json={})
        assert back.json()["promoted"] == v1
        rows = {r["name"]: r for r in http.get("/v1/learners", params={"app": "intents"}).json()["data"]}
        assert rows["examples"]["items"] == 1 and rows["examples"]["promoted"] == v1
        # the undeclared requests' learner of the same name is untouched
        assert http.get("/v1/learners/examples/versions").json()["versions"] == []


def test_forgetting_a_user_clears_every_app(service: Service) -> None:
    with service.client("erase") as http:
        declare(http, "intents", "label", labels=LABELS)
        declare(http, "help", "chat")
        client = openai_client(service, "erase")
        _, a = ask(client, "intents", "Zanzibar card never came", user="zoe")
        http.post("/v1/feedback", json={"interaction_id": a, "correction": "card_arrival"})
        _, b = ask(client, "help", "What is the Zanzibar office code?", user="zoe")
        http.post("/v1/feedback", json={"interaction_id": b, "correction": "Zanzibar code is 4411."})
        gone = http.delete("/v1/users/zoe")
        assert gone.status_code == 200 and gone.json()["clean"], gone.text
        for app in ("intents", "help"):
            rows = {r["name"]: r for r in http.get("/v1/learners", params={"app": app}).json()["data"]}
            assert rows["examples"]["items"] == 0, (app, rows)
    raw = (service.data_dir / "lifelong.db").read_bytes()
    assert b"Zanzibar" not in raw


def test_a_label_app_streams_its_chosen_answer(service: Service) -> None:
    with service.client("streams") as http:
        declare(http, "intents", "label", labels=LABELS)
    chunks = list(
        openai_client(service, "streams").chat.completions.create(
            model="intents",
            messages=[{"role": "user", "content": "my top up failed"}],
            max_tokens=4,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text in LABELS and chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "task": "poem"}, "task"),
        ({"name": "x", "task": "label", "labels": ["only"]}, "labels"),
        ({"name": "x", "task": "label", "labels": ["a", "a"]}, "labels"),
        ({"name": "x", "task": "chat", "labels": ["a", "b"]}, "labels"),
        ({"name": "a/b", "task": "chat"}, "name"),
        ({"name": "x", "task": "chat", "misapply_budget": -1}, "misapply_budget"),
        ({"name": "x", "task": "chat", "surprise": 1}, "surprise"),
    ],
)
def test_bad_declarations_get_422_naming_the_field(
    service: Service, body: dict[str, object], param: str
) -> None:
    with service.client("acme") as http:
        answer = http.post("/v1/apps", json=body)
    assert answer.status_code == 422 and param in (answer.json()["error"]["param"] or ""), answer.text


def test_apps_from_the_command_line(service: Service, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("billing\nrefunds\n")
    where = ["--data-dir", str(service.data_dir), "--tenant", "cli-co"]
    done = lifelong("apps", "declare", "tickets", "--task", "label", "--labels-file", str(labels), *where)
    assert done.returncode == 0, done.stderr
    assert "tickets  label  2 labels" in lifelong("apps", "list", *where).stdout
    with service.client("cli-co") as http:  # the running service sees it (its cache holds 2 s at most)
        assert http.get("/v1/apps/tickets").json()["labels"] == ["billing", "refunds"]
    missing = lifelong(
        "apps", "declare", "t2", "--task", "label", "--labels-file", str(tmp_path / "no"), *where
    )
    assert missing.returncode == 2 and "--labels-file" in missing.stderr and "Traceback" not in missing.stderr
    assert lifelong("apps", "remove", "tickets", *where).returncode == 0
    assert lifelong("apps", "remove", "tickets", *where).returncode == 2
