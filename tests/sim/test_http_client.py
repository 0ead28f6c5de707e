"""The simulator's HTTP client asks a service about a whole step's users at once, up to its
concurrency, and keeps every answer with its own user."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oo_ml import ConfigurationError
from oo_ml.sim.runner import HttpClient, SimConfig, SimRunner
from oo_ml.store.memory import MemoryStore

USERS = 4
CONFIG = SimConfig(("egreedy-v1",), ("quick-wins",), users=USERS, steps=3, seed=2)


class Service(ThreadingHTTPServer):
    """Answers rank and feedback only when ``USERS`` requests of a kind are in flight together
    (a barrier), with the last candidate and a reward that names the event."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.barrier = threading.Barrier(USERS, timeout=2.0)
        self.numbers = itertools.count()
        self.ranked: dict[str, str] = {}  # event id → user id
        self.answered: dict[str, str] = {}  # event id → action


class Handler(BaseHTTPRequestHandler):
    server: Service

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            self.server.barrier.wait()
        except threading.BrokenBarrierError:
            self._reply(503, {"detail": "asked alone"})
            return
        if self.path == "/v1/rank":
            event_id = f"e{next(self.server.numbers)}"
            self.server.ranked[event_id] = body["user_id"]
            tip = body["candidates"][-1]["id"]
            self._reply(200, {"event_id": event_id, "tip_id": tip, "probability": 0.25})
        else:
            self.server.answered[body["event_id"]] = body["action"]
            self._reply(200, {"reward_milli": int(body["event_id"][1:])})

    def _reply(self, status: int, data: dict[str, object]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def service() -> Iterator[Service]:
    server = Service()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run(service: Service, concurrency: int) -> tuple[str, list]:  # type: ignore[type-arg]
    url = f"http://127.0.0.1:{service.server_address[1]}"
    store = MemoryStore()
    result = SimRunner(
        store, client_factory=lambda _: HttpClient(url, concurrency=concurrency)
    ).run(CONFIG, run_id="r")
    return result.status, list(store.read(lambda t: t.sim_events("r")))


def test_a_steps_users_are_in_flight_together(service: Service) -> None:
    status, events = run(service, concurrency=USERS)
    assert status == "done"
    assert len(events) == CONFIG.total_steps
    # Each event carries its own decision's reward (the event's number) and its own user's.
    for event in events:
        event_id = f"e{event.reward_milli}"
        assert service.ranked[event_id] == f"r/egreedy-v1/{event.user_id}"
        assert service.answered[event_id] == event.action
        assert event.probability == 0.25
    assert len(service.answered) == CONFIG.total_steps


def test_one_at_a_time_cannot_meet_the_barrier(service: Service) -> None:
    """The barrier is real: a client that asks one request at a time is refused."""
    status, events = run(service, concurrency=1)
    assert status == "failed"
    assert events == []


def test_concurrency_is_bounded() -> None:
    with pytest.raises(ConfigurationError, match="concurrency"):
        HttpClient("http://127.0.0.1:9", concurrency=0)
