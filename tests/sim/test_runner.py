"""The simulation loop: through the serving engine, stored, reproducible, comparable."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
import threading

import pytest

import oo_ml.engine as engine_module
from oo_ml import ConfigurationError
from oo_ml.rewards import get_reward_rule
from oo_ml.sim.judges import Judgement, JudgeRequest, RuleJudge
from oo_ml.sim.persona import FEATURES, load_personas
from oo_ml.sim.runner import Cohort, InProcessClient, Member, SimConfig, SimRunner, _Seeds
from oo_ml.sim.summary import summarize
from oo_ml.store.memory import MemoryStore
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore
from oo_ml.types import Action, Context

SMALL = SimConfig(
    policies=("egreedy-v1", "ucb-ix1"),
    personas=("morning-focused", "quick-wins"),
    users=3,
    steps=20,
    seed=11,
)


def numbers(run) -> dict:  # type: ignore[no-untyped-def]
    return {p: (r["mean_reward"], r["normalized"]) for p, r in run.summary["policies"].items()}


def test_run_is_stored_with_one_event_per_step() -> None:
    store = MemoryStore()
    run = SimRunner(store).run(SMALL)
    assert run.status == "done"
    assert run.done_steps == run.total_steps == 2 * 3 * 20
    events = store.read(lambda t: t.sim_events(run.run_id))
    assert len(events) == 120
    first = events[0]
    assert first.oracle_reward >= first.chosen_expected >= -1
    assert first.oracle_reward >= first.random_reward
    assert {e.persona for e in events} == {"morning-focused", "quick-wins"}
    assert set(run.summary["policies"]) == {"egreedy-v1", "ucb-ix1"}


def test_same_seed_same_numbers() -> None:
    first = SimRunner(MemoryStore()).run(SMALL)
    second = SimRunner(MemoryStore()).run(SMALL)
    assert numbers(first) == numbers(second)


def test_another_seed_other_numbers() -> None:
    first = SimRunner(MemoryStore()).run(SMALL)
    other = SimRunner(MemoryStore()).run(SimConfig(**{**SMALL.to_dict(), "seed": 12}))  # type: ignore[arg-type]
    assert numbers(first) != numbers(other)


def test_policies_meet_the_same_world_at_the_first_step() -> None:
    """Common random numbers: same tasks, time and oracle for every policy at step 0."""
    store = MemoryStore()
    run = SimRunner(store).run(SMALL)
    events = store.read(lambda t: t.sim_events(run.run_id))
    by_key = {}
    for e in events:
        if e.step == 0:
            by_key.setdefault(e.user_id, []).append((e.hour_of_day, e.day_of_week, e.oracle_reward))
    for worlds in by_key.values():
        assert len(worlds) == 2
        assert worlds[0] == worlds[1]


def test_runs_and_events_go_to_the_serving_database(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url)
    try:
        run = SimRunner(store).run(SMALL)
        assert store.read(lambda t: t.get_run(run.run_id)).summary == run.summary
        assert len(store.read(lambda t: t.sim_events(run.run_id))) == 120
        assert [r.run_id for r in store.read(lambda t: t.list_runs(5))] == [run.run_id]
    finally:
        store.close()


class ExplodingJudge:
    name = "exploding"

    def judge(self, request: JudgeRequest, rng) -> Judgement:  # type: ignore[no-untyped-def]
        if request.step == 5:
            raise RuntimeError("judge fell over")
        return Judgement(Action.SNOOZE, None)


def test_a_failing_run_records_why() -> None:
    run = SimRunner(MemoryStore(), judge=ExplodingJudge()).run(SMALL)
    assert run.status == "failed"
    assert "judge fell over" in (run.error or "")


def test_a_cancelled_run_stops_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("oo_ml.sim.runner.EVENT_BATCH", 10)
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 30:
            cancel.set()

    big = SimConfig(**{**SMALL.to_dict(), "users": 20})  # type: ignore[arg-type]
    run = SimRunner(MemoryStore(), progress=progress, cancel=cancel).run(big)
    assert run.status == "cancelled"
    assert run.done_steps < big.total_steps
    assert seen == sorted(seen)


def test_judges_without_a_model_have_no_oracle() -> None:
    class Always:
        name = "always-done"

        def judge(self, request, rng):  # type: ignore[no-untyped-def]
            return Judgement(Action.DONE, 30_000)

    store = MemoryStore()
    run = SimRunner(store, judge=Always()).run(SMALL)
    events = store.read(lambda t: t.sim_events(run.run_id))
    assert all(e.oracle_reward is None and e.reward_milli == 1000 for e in events)
    assert run.summary["policies"]["ucb-ix1"]["normalized"] is None
    assert run.summary["policies"]["ucb-ix1"]["mean_reward"] == 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policies": ()}, "at least one policy"),
        ({"policies": ("ucb-ix1", "ucb-ix1")}, "distinct"),
        ({"policies": ("nope",)}, "unknown policy"),
        ({"users": 0}, "users"),
        ({"steps": 0}, "steps"),
        ({"personas": ()}, "persona"),
    ],
)
def test_bad_configs_are_refused(change: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises((ConfigurationError, KeyError), match=message):
        SimConfig(**{**SMALL.to_dict(), **change})  # type: ignore[arg-type]


def test_config_round_trips_through_json_data() -> None:
    assert SimConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ConfigurationError, match="unknown"):
        SimConfig.from_dict({**SMALL.to_dict(), "colour": "red"})


def test_same_seed_same_numbers_with_a_population_prior() -> None:
    """The population prior is fitted to users in the order they were last updated: stamped
    by the in-process engine's own clock, not the wall clock, that order is the same in
    every run."""
    config = SimConfig(
        policies=("ucb-pop2",),
        personas=("morning-focused", "quick-wins", "evening-focused"),
        users=6,
        steps=30,
        seed=3,
    )
    first = SimRunner(MemoryStore()).run(config)
    second = SimRunner(MemoryStore()).run(config)
    assert numbers(first) == numbers(second)


def test_a_slow_machine_gets_the_same_numbers_with_a_population_prior(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refits follow the updates, never the wall clock: a machine on which every reading of
    the monotonic clock is ten minutes after the last (beyond any time-based refresh) plays
    the same run as a fast one."""
    config = SimConfig(
        policies=("ucb-pop3",),
        personas=("morning-focused", "quick-wins"),
        users=4,
        steps=12,
        seed=5,
    )
    fast = SimRunner(MemoryStore()).run(config)
    ticks = itertools.count()
    monkeypatch.setattr(engine_module.time, "monotonic", lambda: 600.0 * next(ticks))
    slow = SimRunner(MemoryStore()).run(config)
    assert next(ticks) > 10  # the engine did read the slowed clock
    assert numbers(slow) == numbers(fast)


def test_the_in_process_engine_forgets_answered_decisions_and_plays_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The simulator's engine keeps a bounded decision log; each step's decision is read once,
    by its feedback, so a run plays the same with the bound as without one."""
    clients: list[InProcessClient] = []

    def client(limit: int | None):  # type: ignore[no-untyped-def]
        def make(config: SimConfig) -> InProcessClient:
            made = InProcessClient(config.reward_rule, config.seed, decision_limit=limit)
            clients.append(made)
            return made

        return make

    config = dataclasses.replace(SMALL, users=4, steps=30)
    bounded = SimRunner(MemoryStore(), client_factory=client(5)).run(config)
    unbounded = SimRunner(MemoryStore(), client_factory=client(None)).run(config)
    assert numbers(bounded) == numbers(unbounded)
    logs = [c.engine.store.read(lambda t: list(t.logged_rounds(0, 2**62))) for c in clients]
    assert len(logs[0]) <= 6  # the limit, plus the last step's decision
    assert len(logs[1]) == config.total_steps


def test_summary_is_the_summary_of_the_stored_events(sqlite_url: str) -> None:
    """The runner summarises the events it wrote without reading them back: the same numbers
    as summarising what the store holds."""
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url)
    try:
        run = SimRunner(store).run(SMALL)
        stored = store.read(lambda t: t.sim_events(run.run_id))
        assert run.summary == summarize(stored, list(SMALL.policies))
        assert store.read(lambda t: t.get_run(run.run_id)) == run
    finally:
        store.close()


def test_decision_seeds_drawn_in_blocks_are_the_one_at_a_time_draws() -> None:
    seeds, again = _Seeds(5, "ucb-ix1"), _Seeds(5, "ucb-ix1")
    one_at_a_time = []
    for _ in range(2500):
        one_at_a_time.append(int(again._rng.integers(0, 2**63 - 1)))
    assert [seeds() for _ in range(2500)] == one_at_a_time
    assert _Seeds(5, "egreedy-v1")() != _Seeds(5, "ucb-ix1")()


def test_a_policys_numbers_do_not_depend_on_the_others_in_the_run() -> None:
    """ε-greedy draws at every decision: with one seed stream shared by the policies of a run
    its choices would move when another policy joins."""

    def egreedy_steps(policies: tuple[str, ...]) -> list[tuple[object, ...]]:
        store = MemoryStore()
        run = SimRunner(store).run(dataclasses.replace(SMALL, policies=policies))
        events = store.read(lambda t: t.sim_events(run.run_id))
        return [
            (e.user_id, e.step, e.chosen_id, e.probability, e.reward_milli)
            for e in events
            if e.policy == "egreedy-v1"
        ]

    alone = egreedy_steps(("egreedy-v1",))
    assert len(alone) == SMALL.users * SMALL.steps
    assert sorted(egreedy_steps(("ucb-ix1", "egreedy-v1"))) == sorted(alone)


def test_a_cancel_during_the_last_batch_keeps_its_events() -> None:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == total:
            cancel.set()

    store = MemoryStore()
    run = SimRunner(store, progress=progress, cancel=cancel).run(SMALL)
    assert run.status == "cancelled"
    assert run.done_steps == SMALL.total_steps
    assert len(store.read(lambda t: t.sim_events(run.run_id))) == SMALL.total_steps


def test_a_running_run_stores_its_summary_so_far_with_its_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("oo_ml.sim.runner.EVENT_BATCH", 500)
    store = MemoryStore()
    config = dataclasses.replace(SMALL, users=5, steps=140)  # 2 batches of 500, then 400
    seen: list[tuple[int, int | None]] = []

    def progress(done: int, _total: int) -> None:
        run = store.read(lambda txn: txn.list_runs(1))[0]
        table = (run.summary or {}).get("policies", {})
        seen.append((done, sum(row["events"] for row in table.values()) if table else None))

    runner = SimRunner(store, progress=progress, live_every_s=0.0)
    done = runner.run(config)
    assert done.status == "done"
    # Every stored batch came with the summary of the steps played so far.
    # The last 400 are stored with the final summary, when the run is done.
    assert seen == [(500, 500), (1000, 1000), (1400, 1000)]
    quiet = SimRunner(MemoryStore(), live_every_s=math.inf)
    assert quiet.run(config).summary == done.summary  # storing it on the way changes nothing


def test_the_rule_judges_fast_step_is_its_two_halves_plus_the_oracle() -> None:
    """``Cohort.play`` computes every member's first random number at once and judges from
    it; asking, judging with the step's generator and answering must give the same steps."""
    personas = load_personas(["morning-focused", "quick-wins", "shift-change"])
    members = [
        Member(policy, f"{policy}/u{u}", u, personas[u % 3])
        for policy in ("egreedy-v1", "ucb-ix1")
        for u in range(6)
    ]
    fast, halves = Cohort(members, seed=8), Cohort(members, seed=8)
    rule, judge = get_reward_rule("dwell-v1"), RuleJudge()
    fast_client, halves_client = InProcessClient("dwell-v1", 8), InProcessClient("dwell-v1", 8)
    actions = set()
    for step in range(90):  # past shift-change's drift at step 75
        played = fast.play(fast_client, rule, step)
        asked = halves.ask(halves_client, step)
        verdicts = [halves.judge(judge, m, question) for m, question in enumerate(asked)]
        answered = halves.answer(halves_client, asked, verdicts)
        unmodelled = [
            e._replace(oracle_reward=None, random_reward=None, chosen_expected=None) for e in played
        ]
        assert unmodelled == answered
        assert all(e.oracle_reward is not None for e in played)
        actions |= {e.action for e in played}
    assert actions == {"done", "snooze", "dismiss"}


def test_warm_up_compiles_every_kernel_of_the_simulated_world() -> None:
    # In a new process: this one may have compiled them already.
    script = (
        "from oo_ml.features import _interactions_into, _task_rows_into\n"
        "from oo_ml.policies.pcg import first_after\n"
        "from oo_ml.sim.persona import _oracle_into, _utilities_into\n"
        "from oo_ml.sim.runner import warm_up\n"
        "from oo_ml.sim.tasks import _advance, _complete_each, _fill, _flatten\n"
        "from oo_ml.sim.direct import _choose_each, _learn_each\n"
        "kernels = (_fill, _advance, first_after, _flatten, _complete_each, _task_rows_into,\n"
        "           _interactions_into, _utilities_into, _oracle_into, _choose_each, _learn_each)\n"
        "print([len(k.signatures) for k in kernels])\n"
        "warm_up()\n"
        "print([len(k.signatures) for k in kernels])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    before, after = done.stdout.splitlines()
    assert before == "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"
    assert after == "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"


def test_a_simulated_user_is_asked_in_its_own_waking_hours_across_midnight_and_a_drift(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """A night owl is asked between 18:00 and 03:59, so its rule for 22:00–02:59 applies;
    after its drift to an early bird it is asked between 05:00 and 12:59. Playing a step at
    once and in two halves (the non-rule judges' way) meet the same clock."""
    (tmp_path / "lark.toml").write_text('name = "lark"\ndescription = "Early."\nawake = [5, 12]\n')
    (tmp_path / "owl.toml").write_text(
        'name = "owl"\ndescription = "Late."\nawake = [18, 3]\n'
        "[[when]]\nhours = [22, 2]\npriority = 1.0\n"
        '[drift]\nat_step = 40\npersona = "lark.toml"\n'
    )
    (owl,) = load_personas([str(tmp_path / "owl.toml")])
    members = [Member("egreedy-v1", f"u{u}", u, owl) for u in range(3)]
    fast, halves = Cohort(members, seed=4), Cohort(members, seed=4)
    rule, judge = get_reward_rule("dwell-v1"), RuleJudge()
    fast_client, halves_client = InProcessClient("dwell-v1", 4), InProcessClient("dwell-v1", 4)
    hours: dict[bool, set[int]] = {False: set(), True: set()}
    for step in range(80):
        played = fast.play(fast_client, rule, step)
        asked = halves.ask(halves_client, step)
        verdicts = [halves.judge(judge, m, question) for m, question in enumerate(asked)]
        answered = halves.answer(halves_client, asked, verdicts)
        assert [e.hour_of_day for e in played] == [e.hour_of_day for e in answered]
        assert [e.day_of_week for e in played] == [e.day_of_week for e in answered]
        hours[step >= 40] |= {e.hour_of_day for e in played}
    night = {18, 19, 20, 21, 22, 23, 0, 1, 2, 3}
    assert hours[False] <= night
    assert hours[False] >= {23, 0, 1, 2}
    assert hours[True] <= set(range(5, 13))
    assert owl.weights(Context(1, 2))[FEATURES.index("priority")] == 1.0


def test_a_runs_persona_files_are_stored_as_definitions_and_replay_without_the_files(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """A run stores what its persona files said: run again from the stored settings, with the
    files gone, it gives the same events."""
    (tmp_path / "lark.toml").write_text('name = "lark"\ndescription = "Early."\nawake = [5, 12]\n')
    (tmp_path / "owl.toml").write_text(
        'name = "owl"\ndescription = "Late."\nawake = [18, 3]\n[prefer]\npriority = 0.4\n'
        '[drift]\nat_step = 8\npersona = "lark.toml"\n'
    )
    config = dataclasses.replace(SMALL, personas=(str(tmp_path / "owl.toml"), "quick-wins"))
    store = MemoryStore()
    first = SimRunner(store).run(config)
    stored = SimConfig.from_dict(first.config)
    assert stored.personas == ("owl", "quick-wins")
    assert [d["name"] for d in stored.persona_definitions] == ["owl", "lark"]
    (tmp_path / "owl.toml").unlink()
    (tmp_path / "lark.toml").unlink()
    again = SimRunner(store).run(stored)
    events = [store.read(lambda t, r=r: t.sim_events(r.run_id)) for r in (first, again)]
    assert [e._replace(run_id="") for e in events[0]] == [e._replace(run_id="") for e in events[1]]
    assert {e.persona for e in events[0]} == {"owl", "quick-wins"}


def test_a_persona_file_may_not_take_a_shipped_name_in_a_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "fake.toml").write_text('name = "quick-wins"\ndescription = "Not the real one."\n')
    config = dataclasses.replace(SMALL, personas=(str(tmp_path / "fake.toml"),))
    store = MemoryStore()
    with pytest.raises(ConfigurationError, match="'quick-wins' is taken"):
        SimRunner(store).run(config)
    assert store.read(lambda t: t.list_runs(10)) == []
