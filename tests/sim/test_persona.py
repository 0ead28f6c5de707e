"""Personas: shipped files load, the response model is a distribution, the oracle is exact."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml import Action, ConfigurationError, Context, NotFoundError, get_reward_rule
from oo_ml.sim.judges import JudgeRequest, RuleJudge
from oo_ml.sim.persona import (
    FEATURES,
    RULE_CONDITIONS,
    _feature_row,
    feature_matrix,
    features_at,
    load_persona,
    load_personas,
    persona_data,
    pools_oracle,
    pools_utilities,
    shipped_personas,
    static_features,
    utilities,
)
from oo_ml.sim.tasks import Pools, SimTask

RULE = get_reward_rule("dwell-v1")


def task(**kw: object) -> SimTask:
    values = {"id": "t", "content": "x", "category": "work", "source": "todoist",
              "priority": 1, "due_in_days": 3.0}  # fmt: skip
    values.update(kw)
    return SimTask(**values)  # type: ignore[arg-type]


def test_at_least_six_distinct_documented_personas_ship() -> None:
    personas = shipped_personas()
    assert len(personas) >= 6
    for persona in personas.values():
        assert len(persona.description) > 40
    weights = {
        tuple(p.prefer) + tuple(w for r in p.rules for w in r.weights) for p in personas.values()
    }
    assert len(weights) >= 6


def test_drift_switches_preferences_at_the_stated_step() -> None:
    shift = shipped_personas()["shift-change"]
    assert shift.drift_at == 75
    assert shift.at_step(74) is shift
    assert shift.at_step(75).name == "evening-focused"


def test_morning_person_prefers_high_priority_in_the_morning_only() -> None:
    persona = shipped_personas()["morning-focused"]
    tasks = [task(id="low", priority=1), task(id="high", priority=4)]
    morning = persona.expected_rewards(tasks, Context(8, 1), RULE)
    evening = persona.expected_rewards(tasks, Context(20, 1), RULE)
    assert morning[1] > morning[0]
    assert evening[0] > evening[1]


def test_action_probabilities_sum_to_one() -> None:
    for persona in shipped_personas().values():
        tasks = [task(priority=p, due_in_days=d) for p in (1, 4) for d in (-10.0, 0.5, 12.0)]
        probs = persona.action_probabilities(tasks, Context(13, 5))
        assert np.all(probs >= 0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_expected_done_reward_integrates_the_dwell_bands() -> None:
    persona = shipped_personas()["quick-wins"]
    rng = np.random.default_rng(0)
    dwells = np.array([persona.sample_dwell_ms(rng) for _ in range(40_000)])
    rewards = np.select(
        [dwells < 15_000, dwells < 120_000, dwells < 600_000], [-0.3, 1.0, 0.6], default=0.3
    )
    assert persona.expected_done_reward(RULE) == pytest.approx(rewards.mean(), abs=0.01)


def test_rule_judge_frequencies_match_the_response_model() -> None:
    persona = shipped_personas()["deadline-driven"]
    request = JudgeRequest(persona, Context(10, 2), task(due_in_days=-2.0, priority=3), step=0)
    expected = persona.action_probabilities([request.task], request.context)[0]
    judge = RuleJudge()
    counts = {"done": 0, "snooze": 0, "dismiss": 0}
    for seed in range(6000):
        counts[judge.judge(request, np.random.default_rng(seed)).action.value] += 1
    observed = np.array([counts["done"], counts["snooze"], counts["dismiss"]]) / 6000
    np.testing.assert_allclose(observed, expected, atol=0.03)


def test_rule_judge_is_deterministic_for_a_seed() -> None:
    persona = shipped_personas()["quick-wins"]
    request = JudgeRequest(persona, Context(9, 0), task(), step=3)
    first = [RuleJudge().judge(request, np.random.default_rng(s)) for s in range(50)]
    second = [RuleJudge().judge(request, np.random.default_rng(s)) for s in range(50)]
    assert first == second


def test_user_persona_file_loads_and_may_drift_to_a_shipped_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "night-nurse.toml"
    path.write_text(
        'name = "night-nurse"\n'
        'description = "Works nights; only wants calendar prep before a shift, at 18:00."\n'
        "[prefer]\nsource.calendar = 0.8\n"
        "[[when]]\nhours = [17, 19]\npriority = 0.5\n"
        '[drift]\nat_step = 10\npersona = "quick-wins"\n'
    )
    persona = load_persona(path)
    assert persona.name == "night-nurse"
    assert persona.prefer[FEATURES.index("source.calendar")] == 0.8
    assert persona.at_step(10).name == "quick-wins"
    both = load_personas(["quick-wins", str(path)])
    assert [p.name for p in both] == ["quick-wins", "night-nurse"]


def test_a_drift_may_name_another_file_beside_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "owl.toml").write_text(
        'name = "owl"\ndescription = "Late."\n[prefer]\npriority = -0.7\n'
    )
    (tmp_path / "lark.toml").write_text(
        'name = "lark"\ndescription = "Early."\n[prefer]\npriority = 0.7\n'
        '[drift]\nat_step = 20\npersona = "later/owl.toml"\n'
    )
    (lark,) = load_personas([str(tmp_path / "lark.toml")])
    assert lark.at_step(19).name == "lark"
    assert lark.at_step(20).name == "owl"
    assert lark.at_step(20).prefer[FEATURES.index("priority")] == -0.7


def test_waking_hours_default_to_the_day_and_may_span_midnight(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert {p.awake for p in shipped_personas().values()} == {(7, 22)}
    (tmp_path / "owl.toml").write_text('name = "owl"\ndescription = "Late."\nawake = [18, 3]\n')
    (tmp_path / "lark.toml").write_text(
        'name = "lark"\ndescription = "Early."\nawake = [5, 20]\n'
        '[drift]\nat_step = 20\npersona = "owl.toml"\n'
    )
    (lark,) = load_personas([str(tmp_path / "lark.toml")])
    assert lark.awake == (5, 20)
    assert lark.at_step(20).awake == (18, 3)


def test_drifts_in_a_circle_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.toml").write_text(
            f'name = "{name}"\ndescription = "d"\n[drift]\nat_step = 5\npersona = "{other}.toml"\n'
        )
    with pytest.raises(ConfigurationError, match="leads back"):
        load_personas([str(tmp_path / "a.toml")])


@pytest.mark.parametrize(
    ("hours", "inside"),
    [
        ([17, 19], {17, 18, 19}),
        ([22, 2], {22, 23, 0, 1, 2}),  # from > to spans midnight
        ([23, 0], {23, 0}),
        ([5, 5], {5}),
        ([0, 23], set(range(24))),
    ],
)
def test_a_rule_holds_in_its_hours_only(tmp_path, hours: list[int], inside: set[int]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hours.toml"
    path.write_text(
        f'name = "h"\ndescription = "d"\n[[when]]\nhours = {hours}\nbias = 1.0\nweekend = false\n'
    )
    persona = load_persona(path)
    bias = FEATURES.index("bias")
    weekday = {h for h in range(24) if persona.weights(Context(h, 2))[bias] == 1.0}
    assert weekday == inside
    assert all(persona.weights(Context(h, 6))[bias] == 0.0 for h in range(24))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('description = "no name here"', "needs a name"),
        ('name = "x"', "needs a description"),
        ('name = "x"\ndescription = "d"\n[prefer]\nmood = 1', "unknown feature 'mood'"),
        ('name = "x"\ndescription = "d"\n[prefer]\npriority = "high"', "finite number"),
        ('name = "x"\ndescription = "d"\n[[when]]\nhours = [20, 24]', "hours"),
        ('name = "x"\ndescription = "d"\n[[when]]\nhours = [20]', "hours"),
        ('name = "x"\ndescription = "d"\n[[when]]\nhours = [true, 5]', "hours"),
        ('name = "x"\ndescription = "d"\n[[when]]\ndays = [7]', "days"),
        ('name = "x"\ndescription = "d"\n[response]\nslope = -1', "must be > 0"),
        ('name = "x"\ndescription = "d"\n[response]\nsnooze_share = 2', "snooze_share"),
        ('name = "x"\ndescription = "d"\n[drift]\nat_step = 3\npersona = "nobody"', "'nobody'"),
        ('name = "x"\ndescription = "d"\n[drift]\nat_step = 3\npersona = "no.toml"', "no.toml"),
        ('name = "x"\ndescription = "d"\ncolour = "red"', "unknown keys"),
        ('name = "x"\ndescription = "d"\nawake = [7, 24]', r"awake: must be \[from, to\]"),
        ('name = "x"\ndescription = "d"\nawake = "mornings"', r"awake: must be \[from, to\]"),
        ('name = "x"\ndescription = "d"\nawake = [23, 0]', "covers 2 hour"),
        ('name = "x"\ndescription = "d"\nawake = [9, 9]', "covers 1 hour"),
        (
            'name = "x"\ndescription = "d"\n[response]\nthreshold = nan',
            "threshold: must be a finite",
        ),
        ('name = "x"\ndescription = "d"\n[response]\nslope = "5"', "slope: must be a finite"),
        ('name = "x"\ndescription = "d"\nresponse = 3', "response: must be a table"),
        ('name = "x"\ndescription = "d"\nprefer = [1]', "prefer: must be a table"),
        ('name = "x"\ndescription = "d"\nwhen = 3', "when must be a list"),
        ('name = "x"\ndescription = "d"\nwhen = [1]', r"when\[0\]: must be a table"),
        ('name = "x"\ndescription = "d"\ndrift = 3', "drift: must be a table"),
        ('name = "x"\ndescription = "d"\n[[when]]\ndays = [true]', "days"),
        (
            'name = "x"\ndescription = "d"\n[drift]\nat_step = true\npersona = "quick-wins"',
            "at_step",
        ),
        ('name = "x.toml"\ndescription = "d"', "not end in .toml"),
        ('name = "x"\ndescription = "d"\n' + "[[when]]\nbias = 1\n" * 65, "at most 64"),
        ('name = "x"\ndescription = "d"\n[drift]\nat_step = 3\npersona = ["y"]', "drift.persona"),
        ('name = "a\\nb"\ndescription = "d"', "printable"),
        (f'name = "{"x" * 65}"\ndescription = "d"', "at most 64"),
        (f'name = "x"\ndescription = "{"d" * 2001}"', "at most 2000"),
    ],
)
def test_bad_persona_files_are_refused_precisely(tmp_path, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_persona(path)


def test_unknown_persona_name_lists_the_shipped_ones() -> None:
    with pytest.raises(NotFoundError, match="morning-focused"):
        load_personas(["nobody"])


def test_dwell_cdf_is_a_distribution_function() -> None:
    persona = shipped_personas()["morning-focused"]
    assert persona.dwell_cdf(0) == 0.0
    assert persona.dwell_cdf(persona.response.dwell_median_s) == pytest.approx(0.5)
    assert persona.dwell_cdf(1e9) == pytest.approx(1.0)
    assert math.isclose(persona.dwell_cdf(10), 1 - persona.dwell_cdf(360), rel_tol=1e-9)


def test_pool_feature_matrix_rows_are_the_judges_per_task_rows() -> None:
    """The oracle's vectorised features (static part kept per pool, due-date part per step)
    are exactly the plain-float rows the rule judge computes for one task."""
    rng = np.random.default_rng(4)
    sources = ["todoist", "calendar", "email", "other", "Email"]
    tasks = [
        task(id=f"t{i}", priority=int(rng.integers(1, 5)), source=sources[i % 5],
             due_in_days=float(rng.normal(0, 20)))
        for i in range(40)
    ] + [task(id="now", due_in_days=0.0), task(id="far", due_in_days=45.0)]  # fmt: skip
    static = static_features([t.priority for t in tasks], [t.source for t in tasks])
    matrix = features_at(static, np.array([t.due_in_days for t in tasks]))
    assert matrix.flags.c_contiguous
    assert matrix.tolist() == [list(_feature_row(t)) for t in tasks]
    assert (
        feature_matrix(
            np.array([float(t.priority) for t in tasks]),
            np.array([t.due_in_days for t in tasks]),
            [t.source for t in tasks],
        ).tolist()
        == matrix.tolist()
    )
    assert not static.flags.writeable


def test_expected_rewards_are_the_response_model_averaged_over_actions() -> None:
    persona = shipped_personas()["deadline-driven"]
    tasks = [task(priority=p, due_in_days=d) for p in (1, 4) for d in (-10.0, 0.5, 12.0)]
    context = Context(10, 2)
    done, snooze, dismiss = persona.action_probabilities(tasks, context).T
    rewards = {a: RULE.actions[a].milli_for(None) / 1000.0 for a in (Action.SNOOZE, Action.DISMISS)}
    by_hand = (
        done * persona.expected_done_reward(RULE)
        + snooze * rewards[Action.SNOOZE]
        + dismiss * rewards[Action.DISMISS]
    )
    np.testing.assert_allclose(persona.expected_rewards(tasks, context, RULE), by_hand)


def oracle_pools(seeds: list[int], steps: int) -> Pools:
    """Pools of the given members after ``steps`` steps, a task done at every third step of
    each: pools of different sizes and ages, the same whoever shares them."""
    pools = Pools(seeds, [f"m{seed}" for seed in seeds])
    for step in range(steps):
        for m, seed in enumerate(seeds):  # by the member's seed, not its place among the others
            if (step + seed) % 3 == 0:
                pools.complete(m, (step + seed) % int(pools.count[m]))
        pools.advance()
    return pools


def oracle_questions(count: int, seed: int) -> tuple[list, list[int]]:  # type: ignore[type-arg]
    """A persona and a moment per member, and the index of the task it was shown."""
    rng = np.random.default_rng(seed)
    personas = list(shipped_personas().values())
    moments = [
        (personas[int(rng.integers(len(personas)))],
         Context(int(rng.integers(0, 24)), int(rng.integers(0, 7))))
        for _ in range(count)
    ]  # fmt: skip
    return moments, [int(rng.integers(4)) for _ in range(count)]  # every pool holds ≥ 4 tasks


def test_oracle_numbers_do_not_depend_on_the_batch() -> None:
    """Scored in one batch, in pieces or one by one, each member's pool gets the same bits."""
    seeds = list(range(100, 160))
    moments, chosen = oracle_questions(len(seeds), seed=8)
    whole = pools_oracle(oracle_pools(seeds, 25), moments, chosen, RULE)
    pieces = []
    for start, end in ((0, 7), (7, 41), (41, 60)):
        part = oracle_pools(seeds[start:end], 25)
        pieces += pools_oracle(part, moments[start:end], chosen[start:end], RULE)
    alone = [
        pools_oracle(oracle_pools([seed], 25), [moment], [shown], RULE)[0]
        for seed, moment, shown in zip(seeds, moments, chosen, strict=True)
    ]
    assert whole == pieces == alone


def test_oracle_numbers_are_the_personas_expected_rewards() -> None:
    """Best, average and shown: of the persona's expected reward over that member's pool."""
    pools = oracle_pools(list(range(40)), 30)
    moments, chosen = oracle_questions(len(pools), seed=9)
    for m, (best, average, shown) in enumerate(pools_oracle(pools, moments, chosen, RULE)):
        persona, context = moments[m]
        expected = persona.expected_rewards(pools.tasks(m), context, RULE)
        assert best == expected.max()
        assert shown == expected[chosen[m]]
        assert average == pytest.approx(expected.mean(), rel=1e-12)


def test_pools_utilities_give_the_rule_judges_done_probability_bit_for_bit() -> None:
    """A step's utilities, computed for every pool at once, give each task the probability
    of being done that the rule judge computes for the task alone: the judge of a simulated
    step reads them instead."""
    pools = oracle_pools(list(range(50)), 30)
    moments, _ = oracle_questions(len(pools), seed=10)
    seen = pools_utilities(pools, moments, RULE)
    assert seen.utility.shape == (int(pools.count.sum()),)
    assert not seen.utility.flags.writeable
    checked = set()
    for m, (persona, context) in enumerate(moments):
        for index, task in enumerate(pools.tasks(m)):
            done = persona.done_of(seen.of(m, index))
            assert done == persona.done_probability(task, context)
            checked.add(round(done, 1))
    assert len(checked) >= 5  # not one number throughout


def test_utilities_are_the_dot_products_of_features_and_weights() -> None:
    rng = np.random.default_rng(2)
    features, weights = rng.normal(size=(30, len(FEATURES))), rng.normal(size=len(FEATURES))
    np.testing.assert_allclose(utilities(features.T, weights), features @ weights, rtol=1e-12)
    per_task = rng.normal(size=(len(FEATURES), 30))
    np.testing.assert_allclose(
        utilities(features.T, per_task), np.einsum("ij,ji->i", features, per_task), rtol=1e-12
    )


def _toml(data: dict) -> str:  # type: ignore[type-arg]
    """``persona_data``'s layout written back as a persona file."""
    lines = [
        f"name = {json.dumps(data['name'])}",
        f"description = {json.dumps(data['description'])}",
        f"awake = {data['awake']}",
        "[response]",
    ]
    lines += [f"{key} = {value!r}" for key, value in data["response"].items()]
    lines += ["[prefer]", *(f"{key} = {w!r}" for key, w in data["prefer"].items())]
    for rule in data["when"]:
        lines += ["[[when]]", f"hours = {rule['hours']}"]
        if "weekend" in rule:
            lines.append(f"weekend = {str(rule['weekend']).lower()}")
        if "days" in rule:
            lines.append(f"days = {rule['days']}")
        lines += [f"{k} = {w!r}" for k, w in rule.items() if k not in RULE_CONDITIONS]
    if data["drift"] is not None:
        lines += ["[drift]", f"at_step = {data['drift']['at_step']}",
                  f"persona = {json.dumps(data['drift']['persona'])}"]  # fmt: skip
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(shipped_personas()))
def test_persona_data_says_everything_a_persona_is(tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    """Written back as a file and loaded, a persona's data gives the same persona."""
    persona = shipped_personas()[name]
    path = tmp_path / "again.toml"
    path.write_text(_toml(persona_data(persona)))
    again = load_persona(path)
    for field in ("name", "description", "response", "awake", "drift_at"):
        assert getattr(again, field) == getattr(persona, field)
    assert [(r.hours, r.weekend, r.days) for r in again.rules] == [
        (r.hours, r.weekend, r.days) for r in persona.rules
    ]
    assert np.array_equal(again.prefer, persona.prefer)
    assert [r.weights.tolist() for r in again.rules] == [r.weights.tolist() for r in persona.rules]
    assert (again.drift_to and again.drift_to.name) == (persona.drift_to and persona.drift_to.name)
    for hour, day in ((3, 0), (8, 2), (19, 4), (21, 6)):
        assert (
            again.weights(Context(hour, day)).tolist()
            == persona.weights(Context(hour, day)).tolist()
        )


_KEYS = ("awake", "response", "prefer", "when", "drift", "hours", "weekend", "days", "at_step",
         "persona", "priority", "source", "email", "slope", "threshold", "snooze_share",
         "dwell_median_s", "dwell_sigma", "bias", "name")  # fmt: skip
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["quick-wins", "x", "a.toml", ""])
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=6)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["x", "y"]), "description": st.just("d")},
        optional=dict.fromkeys(_KEYS[:-1], _JSON),
    )
)
def test_any_json_definition_loads_or_is_refused_with_a_configuration_error(data: dict) -> None:  # type: ignore[type-arg]
    """What a request's persona_definitions can hold never escapes as another error (a 500)."""
    try:
        load_personas([], [data])
    except ConfigurationError as exc:
        message = str(exc)
        assert message  # any refusal passes, but it must say why


def test_shipped_personas_are_parsed_once_and_handed_out_as_new_dicts() -> None:
    first = shipped_personas()
    first.pop("quick-wins")
    first["someone"] = first["morning-focused"]
    second = shipped_personas()
    assert "quick-wins" in second
    assert "someone" not in second
    assert second["morning-focused"] is shipped_personas()["morning-focused"]
    assert load_personas(["quick-wins"])[0] == second["quick-wins"]
