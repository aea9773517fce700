"""Learning across workers on one PostgreSQL log: separate `lifelong serve` processes (and uvicorn's
--workers) see each other's feedback on their next response; a worker killed with SIGKILL under load
loses no acknowledged feedback, and the service goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _service import Service, quick_flags, services, start_service
from lifelong.experience.log import ExperienceLog

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pair(llama_upstream: str, postgres_url: str, tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    made = services(
        tmp_path,
        2,
        *quick_flags(llama_upstream),
        log=postgres_url,
    )
    a = next(made)
    b = next(made)
    b.keys = a.keys  # one database, one set of keys
    yield a, b
    made.close()


def test_feedback_taken_by_one_worker_is_in_the_next_response_of_the_other(
    pair: tuple[Service, Service],
) -> None:
    a, b = pair
    with a.client("acme") as on_a, b.client("acme") as on_b:
        lags = []
        for n in range(5):
            added = on_a.post(
                "/v1/memories", json={"user_id": "ada", "text": f"Ada's locker number is {n}17"}
            )
            acked = time.perf_counter()
            assert added.status_code == 200, added.text
            found = on_b.get(
                "/v1/memories/search", params={"query": f"locker {n}17", "user_id": "ada"}
            ).json()
            lags.append(time.perf_counter() - acked)
            assert f"Ada's locker number is {n}17" in [
                r["memory"] for r in found["results"]
            ]  # the very next one
        assert max(lags) < 1.0, lags
        asked = on_a.post(
            "/v1/completions", json={"model": "m", "prompt": "Our VPN host is", "max_tokens": 2, "user": "bo"}
        ).json()
        fb = on_b.post("/v1/feedback", json={"interaction_id": asked["id"], "correction": "vpn.acme.example"})
        assert fb.status_code == 200, fb.text
        for worker in (on_a, on_b):
            again = worker.post(
                "/v1/completions",
                json={"model": "m", "prompt": "Our VPN host is", "max_tokens": 2, "user": "bo"},
            ).json()
            assert any("vpn.acme.example" in r["text"] for r in again["lifelong"]["recalled"]), again


def test_versions_and_erasure_on_one_worker_hold_on_every_worker(pair: tuple[Service, Service]) -> None:
    a, b = pair
    with a.client("acme") as on_a, b.client("acme") as on_b:
        on_a.post("/v1/memories", json={"user_id": "cy", "text": "Cy's desk is on floor 3"})
        v1 = on_a.post("/v1/learners/memory/versions", json={"message": "one"}).json()["version"]
        on_a.post("/v1/learners/memory/promote", json={"version": v1})
        on_a.post("/v1/memories", json={"user_id": "cy", "text": "Cy parks in bay 12"})
        v2 = on_b.post("/v1/learners/memory/versions", json={"message": "two"}).json()["version"]
        assert v2 == v1 + 1  # one counter across processes
        on_b.post("/v1/learners/memory/promote", json={"version": v2})
        assert len(on_a.get("/v1/memories", params={"user_id": "cy"}).json()["results"]) == 2
        on_b.post("/v1/learners/memory/rollback", json={})
        assert [
            m["memory"] for m in on_a.get("/v1/memories", params={"user_id": "cy"}).json()["results"]
        ] == ["Cy's desk is on floor 3"]
        gone = on_a.delete("/v1/users/cy").json()
        assert gone["clean"], gone
        assert on_b.get("/v1/memories", params={"user_id": "cy"}).json()["results"] == []
        assert (
            on_b.get("/v1/memories/search", params={"query": "desk", "user_id": "cy"}).json()["results"] == []
        )


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes under the serve process (its multiprocessing helpers excluded)."""
    found = []
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            state = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if (
            b"resource_tracker" not in cmdline and state != "Z"
        ):  # a killed, not yet reaped worker is no worker
            found.append(child)
    return found


def test_kill_9_of_a_worker_under_load_loses_no_acknowledged_feedback(
    llama_upstream: str, postgres_url: str, tmp_path: Path
) -> None:
    s = start_service(
        tmp_path,
        *quick_flags(llama_upstream),
        "--workers",
        "2",
        log=postgres_url,
    )
    try:
        deadline = time.time() + 60
        while len(_workers(s.process.pid)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = _workers(s.process.pid)
        assert len(workers) == 2, workers
        with s.client("acme") as http:
            targets = [
                http.post(
                    "/v1/completions", json={"model": "m", "prompt": f"x{n} =", "max_tokens": 1}
                ).json()["id"]
                for n in range(4)
            ]
        acked: list[str] = []
        errors: list[str] = []
        stop = threading.Event()

        def load(worker_id: int) -> None:
            with s.client("acme", timeout=10) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    fid = f"load-{worker_id}-{n}"
                    try:
                        r = http.post(
                            "/v1/feedback",
                            json={"interaction_id": targets[n % 4], "reward": 1.0, "feedback_id": fid},
                        )
                    except httpx.HTTPError as exc:
                        errors.append(type(exc).__name__)
                        continue
                    if r.status_code == 200:
                        acked.append(f"{fid}.reward")
                    else:
                        errors.append(str(r.status_code))

        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        before = len(acked)
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(3.0)
        stop.set()
        for t in threads:
            t.join()
        assert before > 20 and len(acked) > before, (
            before,
            len(acked),
            errors[:20],
        )  # load on both sides of the kill
        log = ExperienceLog(postgres_url)
        try:
            logged = {f.id for iid in targets for f in log.get(iid).feedback}
        finally:
            log.close()
        lost = [fid for fid in acked if fid not in logged]
        print(
            f"kill -9 under load: {len(acked)} acknowledged ({before} before the kill), {len(errors)} failed "
            f"requests, {len(lost)} lost"
        )
        assert lost == [], f"{len(lost)} acknowledged feedback lost"
        deadline = time.time() + 60  # uvicorn reaps the killed worker and starts a new one in its place
        while time.time() < deadline:
            alive = _workers(s.process.pid)
            if len(alive) == 2 and workers[0] not in alive:
                break
            time.sleep(0.5)
        assert len(_workers(s.process.pid)) == 2 and workers[0] not in _workers(s.process.pid)
        for _ in range(6):  # both workers answer (the connection is spread over them)
            assert httpx.get(s.url + "/healthz", timeout=10).status_code == 200
    finally:
        s.stop()
