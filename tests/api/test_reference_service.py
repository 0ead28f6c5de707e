"""The existing service and this one side by side: the same requests, the same answers.

The existing service's own code (``shared/reference/seed_main.py``, beside this repository,
or the file ``OO_REFERENCE_SERVICE`` names) is started unchanged, in this process, on its own
port and state directory; this service on a fresh SQLite database. A seeded client then plays
the oO app against both at once: it ranks with ``/score`` and ``/score/egreedy``, rewards the
tip it was shown with that tip's own features, reads ``/stats``, ``/stats/egreedy`` and
``/features``, and resets users. Every answer must agree: status, every field the old service
answered, and every number (scores, θ, counts, sums) to 1e-9.

Where the two differ by design, the client stays out of the way and the test says why:

* Ties: this service splits a tie at random, the old one took the first candidate. The
  candidates here have distinct features, so ties do not arise; :func:`test_a_tie_scores_the_same`
  checks a tie's score, and that the tip is one of the tied ones.
* ``egreedy-v1`` explores with a coin of its own (the old service used numpy's global one, seeded
  here so that a run repeats): its choices are compared where both chose the same tip, and the
  client rewards only those rounds, so that both learn the same thing.
* The client rewards only tips shown since the user's last reset: this service does not teach a
  reset model with a reward for a tip shown before the reset; the old one did.
* Inputs the old service took and this one refuses (an age beyond 100 years, a priority outside
  1–4) or reads differently (a negative age means "not yet due", age feature 0) are left to
  the contract and validation tests.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest

from .conftest import ServerFactory
from .support import LiveServer, q

REFERENCE = Path(
    os.environ.get(
        "OO_REFERENCE_SERVICE",
        Path(__file__).resolve().parents[3] / "shared" / "reference" / "seed_main.py",
    )
)

USERS = ("ana", "ben-2", "c.d@example.org", "dörte", "eve_5")


@contextmanager
def _reference_module(state_dir: Path) -> Iterator[ModuleType]:
    """The old service's module, imported afresh with its state in ``state_dir``. It stays in
    ``sys.modules`` while in use: pydantic resolves its postponed annotations there."""
    name = "oo_ml_tests_reference_service"
    spec = importlib.util.spec_from_file_location(name, REFERENCE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    os.environ["STATE_DIR"] = str(state_dir)
    try:
        spec.loader.exec_module(module)
        del os.environ["STATE_DIR"]
        yield module
    finally:
        os.environ.pop("STATE_DIR", None)
        del sys.modules[name]


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[httpx.Client]:
    """The existing service, served by uvicorn on a free port; numpy's global generator (its
    exploration coin) seeded for the test and restored after it."""
    if not REFERENCE.is_file():
        pytest.skip(f"the existing service's code is not at {REFERENCE} (set OO_REFERENCE_SERVICE)")
    saved = np.random.get_state()
    np.random.seed(20261127)
    with _reference_module(tmp_path / "reference-state") as module:
        server = LiveServer(module.app)
        try:
            yield server.start().client
        finally:
            server.stop()
            np.random.set_state(saved)


@pytest.fixture
def ours(start_server: ServerFactory) -> httpx.Client:
    """This service, its decisions seeded so that a run repeats."""
    server = start_server()
    seeds = random.Random(7)
    server.engine.seed_source = lambda: seeds.getrandbits(63)
    return server.client


class _Client:
    """The oO app, seeded, against both services: it remembers the tip each user was last shown
    by each policy (with the request that showed it) and counts what it compared."""

    def __init__(self, old: httpx.Client, new: httpx.Client, seed: int) -> None:
        self.old, self.new = old, new
        self.rng = random.Random(seed)
        self.shown: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self.compared: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.compared[what] = self.compared.get(what, 0) + 1

    def both(self, method: str, path: str, body: Any = None) -> tuple[Any, Any]:
        old = self.old.request(method, path, json=body)
        new = self.new.request(method, path, json=body)
        assert new.status_code == old.status_code, (path, body, old.text, new.text)
        return old.json(), new.json()

    def candidates(self) -> list[dict[str, Any]]:
        """Two to six tips whose features all differ: distinct ages (one at most past the
        30-day cap, where ages stop differing), and at most one tip without features."""
        ages = self.rng.sample(range(1, 3000), self.rng.randint(2, 6))
        tips = []
        for i, age in enumerate(ages):
            tip: dict[str, Any] = {"id": f"t{i}", "content": f"task {i}", "source": "todoist"}
            if i == 0 and self.rng.random() < 0.3:
                tips.append(tip)  # the old service's defaults: age 0, priority 1, not overdue
                continue
            features: dict[str, Any] = {"task_age_days": age / 100}
            if i == 1 and self.rng.random() < 0.2:
                features["task_age_days"] = self.rng.choice([30, 45.5, 400])
            if self.rng.random() < 0.8:
                features["is_overdue"] = self.rng.random() < 0.5
            if self.rng.random() < 0.8:
                features["priority"] = self.rng.randint(1, 4)
            if self.rng.random() < 0.2:
                features["hour_of_day"] = self.rng.randint(0, 23)  # both ignore it when ranking
            if self.rng.random() < 0.5:
                tip["source_id"] = f"s{i}"
            tip["features"] = features
            tips.append(tip)
        return tips

    def score(self, user: str, policy: str) -> None:
        body: dict[str, Any] = {"user_id": user, "candidates": self.candidates()}
        context = {}
        if self.rng.random() < 0.9:
            context["hour_of_day"] = self.rng.randint(0, 23)
        if self.rng.random() < 0.7:
            context["day_of_week"] = self.rng.randint(0, 6)
        if context or self.rng.random() < 0.5:
            body["context"] = context
        path = "/score" if policy == "linucb-v1" else "/score/egreedy"
        old, new = self.both("POST", path, body)
        assert set(new) == set(old)
        assert new["policy"] == old["policy"] == policy
        if policy == "linucb-v1" or new["tip_id"] == old["tip_id"]:
            assert new["tip_id"] == old["tip_id"], (body, old, new)
            assert math.isclose(new["score"], old["score"], rel_tol=1e-9, abs_tol=1e-12)
            self.shown[(user, policy)] = (new["tip_id"], body)
            self._count(path)
        else:
            self.shown.pop((user, policy), None)  # the two were shown different tips

    def reward(self, user: str) -> None:
        """Reward the tip a policy last showed ``user`` (either policy, if both did)."""
        pending = [policy for (who, policy) in self.shown if who == user]
        if not pending:
            return
        policy = self.rng.choice(sorted(pending))
        tip, request = self.shown.pop((user, policy))
        candidate = next(c for c in request["candidates"] if c["id"] == tip)
        context = request.get("context", {})
        features = dict(candidate.get("features", {}))
        features["hour_of_day"] = context.get("hour_of_day", 12)
        body = {
            "user_id": user,
            "tip_id": tip,
            "reward": self.rng.choice([1, 0.5, 0, -0.5, -1, 0.25]),
            "features": features,
        }
        path = "/reward"
        if policy == "egreedy-v1":
            path, body["day_of_week"] = "/reward/egreedy", context.get("day_of_week", 0)
        old, new = self.both("POST", path, body)
        assert new == old == {"ok": True}
        self._count(path)

    def stats(self, user: str) -> None:
        for path, random_fields in (
            (f"/stats/{q(user)}", ()),
            # How often each explored depends on its own coin.
            (f"/stats/egreedy/{q(user)}", ("exploration_rate",)),
        ):
            old, new = self.both("GET", path)
            for name, value in old.items():
                assert name in new, (path, name)
                if name == "last_updated":
                    assert (new[name] is None) == (value is None)
                elif name not in random_fields:
                    _same(value, new[name], f"{path} {name}")
            self._count(path.rsplit("/", 1)[0])
        old, new = self.both("GET", f"/features/{q(user)}")
        # The old history holds linucb-v1's choices without a policy field and egreedy-v1's with
        # one; compared here: linucb-v1's, in order, on the old fields.
        old_rows = [row for row in old["history"] if "policy" not in row]
        new_rows = [row for row in new["history"] if row["policy"] == "linucb-v1"]
        assert len(new_rows) == len(old_rows)
        for old_row, new_row in zip(old_rows, new_rows, strict=True):
            assert new_row["tip_id"] == old_row["tip_id"]
            assert math.isclose(new_row["score"], old_row["score"], rel_tol=1e-9, abs_tol=1e-12)
            for name, value in old_row["features"].items():
                _same(value, new_row["features"][name], f"features {name}")
        self._count("/features")

    def reset(self, user: str) -> None:
        old, new = self.both("POST", f"/reset/{q(user)}")
        assert new == old == {"ok": True}
        self.shown.pop((user, "linucb-v1"), None)
        self.shown.pop((user, "egreedy-v1"), None)
        self._count("/reset")


def _same(old: Any, new: Any, where: str) -> None:
    """Equal JSON values, floats to 1e-9; an int stays an int and a float a float."""
    if isinstance(old, list):
        assert isinstance(new, list), where
        assert len(new) == len(old), where
        for a, b in zip(old, new, strict=True):
            _same(a, b, where)
    elif isinstance(old, float):
        assert isinstance(new, float), (where, old, new)
        assert math.isclose(new, old, rel_tol=1e-9, abs_tol=1e-12), (where, old, new)
    else:
        assert type(new) is type(old), (where, old, new)
        assert new == old, (where, old, new)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_app_gets_the_same_answers(
    reference: httpx.Client, ours: httpx.Client, seed: int
) -> None:
    client = _Client(reference, ours, seed)
    for _ in range(500):
        user, roll = client.rng.choice(USERS), client.rng.random()
        if roll < 0.30:
            client.score(user, "linucb-v1")
        elif roll < 0.55:
            client.score(user, "egreedy-v1")
        elif roll < 0.85:
            client.reward(user)
        elif roll < 0.97:
            client.stats(user)
        else:
            client.reset(user)
    for user in USERS:
        client.stats(user)
    # Enough of everything was compared for the equalities above to mean something.
    expected = {
        "/score": 100,
        "/score/egreedy": 40,
        "/reward": 40,
        "/reward/egreedy": 15,
        "/stats": 40,
        "/stats/egreedy": 40,
        "/features": 40,
        "/reset": 5,
    }
    assert {k: min(client.compared.get(k, 0), v) for k, v in expected.items()} == expected, (
        client.compared
    )


def test_a_tie_scores_the_same(reference: httpx.Client, ours: httpx.Client) -> None:
    """Two tips alike in every feature: both services give the tie's score; the old one shows
    the first, this one either."""
    tied = {"is_overdue": True, "task_age_days": 12.5, "priority": 4}
    body = {
        "user_id": "tie",
        "candidates": [
            {"id": "low", "content": "", "source": "todoist", "features": {"priority": 1}},
            {"id": "first", "content": "", "source": "todoist", "features": tied},
            {"id": "second", "content": "", "source": "gcal", "features": tied},
        ],
        "context": {"hour_of_day": 9, "day_of_week": 2},
    }
    old, new = reference.post("/score", json=body).json(), ours.post("/score", json=body).json()
    assert old["tip_id"] == "first"
    assert new["tip_id"] in {"first", "second"}
    assert math.isclose(new["score"], old["score"], rel_tol=1e-12)
