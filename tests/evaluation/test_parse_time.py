"""Times typed on the command line."""

from __future__ import annotations

import pytest

from oo_ml.errors import ValidationError
from oo_ml.ope.log import parse_time

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1764000000000", 1_764_000_000_000),
        ("0", 0),
        ("2025-11-24", 1_763_942_400_000),
        ("2025-11-24T16:00:00", NOW),
        ("2025-11-24T17:00:00+01:00", NOW),
        ("2025-11-24T16:00:00.250Z", NOW + 250),
        ("90s", NOW - 90_000),
        ("90m", NOW - 5_400_000),
        ("12h", NOW - 43_200_000),
        ("7d", NOW - 604_800_000),
        ("1.5d", NOW - 129_600_000),
        ("2w", NOW - 1_209_600_000),
        (" 7d ", NOW - 604_800_000),
    ],
)
def test_forms(text: str, expected: int) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "7 days", "-5", "7y", "2025-13-01", "1e3"])
def test_bad_forms_name_the_option(text: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_time(text, NOW, name="until")
    assert error.value.field == "until"
