"""The dashboard in a real headless Chromium (Debian's `chromium` package, driven by Playwright): it
loads against a running service, shows the numbers the API gives, and promotes and rolls back a
version; a screenshot is saved."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from _service import Service, quick_flags, start_service

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def service(llama_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: apt-get install chromium (README command 2 does)")
    s = start_service(
        tmp_path_factory.mktemp("dashboard"),
        *quick_flags(llama_upstream),
    )
    yield s
    s.stop()


def test_the_dashboard_shows_what_the_api_says(service: Service, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with service.client("acme") as http:
        ids = []
        for n in range(6):
            r = http.post(
                "/v1/completions",
                json={"model": "m", "prompt": f"value_{n} =", "max_tokens": 2, "user": "ada"},
            )
            ids.append(r.json()["id"])
        for n, interaction_id in enumerate(ids):
            http.post("/v1/feedback", json={"interaction_id": interaction_id, "accept": n % 3 != 0})
        http.post("/v1/memories", json={"user_id": "ada", "text": "Ada reviews pull requests on Fridays"})
        v1 = http.post("/v1/learners/memory/versions", json={"message": "first"}).json()["version"]
        http.post("/v1/learners/memory/promote", json={"version": v1})
        http.post("/v1/memories", json={"user_id": "ada", "text": "Ada writes Rust"})
        v2 = http.post("/v1/learners/memory/versions", json={"message": "second"}).json()["version"]
        curve = http.get("/v1/learning", params={"window": 10}).json()
        memories = http.get("/v1/memories").json()["results"]
        learners = {row["name"]: row for row in http.get("/v1/learners").json()["data"]}

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(service.url + "/dashboard")
        page.fill("#key", service.key("acme"))
        page.click("#load")
        page.wait_for_function(
            "document.getElementById('tenant').textContent === 'signed in'", timeout=20_000
        )
        assert page.text_content("#judged") == str(curve["judged"]) == "6"
        assert page.text_content("#served-rate") == f"{100 * curve['served']:.1f}%"
        assert page.locator("circle.served-point").count() == len(curve["points"]) == 1  # the curve is drawn
        rows = page.locator("#memories tbody tr")
        assert rows.count() == len(memories) == 2
        shown = {rows.nth(i).get_attribute("data-id") for i in range(rows.count())}
        assert shown == {m["id"] for m in memories}
        sources = page.text_content("#memories tbody")
        assert all(m["sources"][0][:8] in (sources or "") for m in memories)  # provenance is shown
        row = page.locator("#learners tbody tr[data-learner='memory']")
        assert row.locator("td.items").text_content() == str(learners["memory"]["items"])
        interactions = page.locator("#interactions tbody tr")
        assert interactions.count() == 8  # six requests and the two memories
        # Promote v2 from the page, then roll back to v1: the API agrees at each step.
        row.locator("button", has_text="versions").click()
        page.wait_for_selector("#version-list")
        page.locator("#version-list tr", has_text=f"v{v2}").locator("button").click()
        page.wait_for_function(
            f"document.querySelector('#versions h2').textContent.includes('promoted: {v2}')"
        )
        with service.client("acme") as http:
            assert http.get("/v1/learners/memory/versions").json()["promoted"] == v2
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        page.click("#rollback")
        page.wait_for_function(
            f"document.querySelector('#versions h2').textContent.includes('promoted: {v1}')"
        )
        with service.client("acme") as http:
            assert http.get("/v1/learners/memory/versions").json()["promoted"] == v1
            assert len(http.get("/v1/memories").json()["results"]) == 1
        page.click("#load")
        page.wait_for_function("document.querySelectorAll('#memories tbody tr').length === 1")
        assert errors == []
        browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "dashboard.png", service.data_dir / "dashboard.png")


def test_a_wrong_key_is_told_on_the_page(service: Service) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page()
        page.goto(service.url + "/dashboard")
        page.fill("#key", "ll_000000000000_" + "A" * 43)
        page.click("#load")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert "not valid" in (page.text_content("#error") or "")
        browser.close()


def test_the_dashboard_shows_one_app_beside_its_shadow(service: Service) -> None:
    from playwright.sync_api import sync_playwright

    labels = ["billing", "refunds", "login"]
    with service.client("desk") as http:
        http.post("/v1/apps", json={"name": "routing", "task": "label", "labels": labels})
        for n, (text, right) in enumerate(
            [
                ("I was charged twice", "billing"),
                ("give me my money back", "refunds"),
                ("cannot sign in", "login"),
            ]
        ):
            r = http.post(
                "/v1/chat/completions",
                json={"model": "routing", "messages": [{"role": "user", "content": text}], "user": f"u{n}"},
            )
            http.post("/v1/feedback", json={"interaction_id": r.json()["id"], "correction": right})
        curve = http.get("/v1/learning", params={"window": 10, "app": "routing"}).json()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(service.url + "/dashboard")
        page.fill("#key", service.key("desk"))
        page.click("#load")
        page.wait_for_function("document.querySelectorAll('#app option').length === 2", timeout=20_000)
        page.select_option("#app", "routing")
        page.wait_for_selector("#learners tbody tr[data-learner='combiner']")
        assert page.text_content("#judged") == str(curve["judged"]) == "3"
        assert page.text_content("#right-served") == str(int(curve["right_served"]))
        assert page.text_content("#right-shadow") == str(int(curve["right_shadow"]))
        assert page.locator("#interactions tbody tr").count() == 3
        browser.close()
