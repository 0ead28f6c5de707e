"""The one exception tree of oo_ml.

::

    OOMLError
    ├── ValidationError      bad input; ``field`` names where (also a ``ValueError``)
    ├── NotFoundError        an unknown name or id (also a ``KeyError``)
    │   ├── UnknownPolicyError
    │   └── UnknownRewardRuleError
    ├── ConflictError        an id that must be new already exists
    ├── StateError           learned state that does not fit (schema, dimension, encoder)
    ├── ConfigurationError   a hyper-parameter or rule table out of range (also ValueError)
    ├── RegistryError        publishing a name that is already taken
    └── StoreError           the database failed or is not at the expected schema

Callers that only care about "this request was bad" catch ``ValidationError``; the HTTP
layer maps it to 422 with ``field`` in the body.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "NotFoundError",
    "OOMLError",
    "PromotionRefusedError",
    "RegistryError",
    "StateError",
    "StoreError",
    "UnknownPolicyError",
    "UnknownRewardRuleError",
    "ValidationError",
]


class OOMLError(Exception):
    """Base of every error raised on purpose by oo_ml."""


class ValidationError(OOMLError, ValueError):
    """An input value is out of its domain.

    ``field`` is a dotted path to the offending value, e.g. ``candidates[3].priority``.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def at(self, prefix: str) -> ValidationError:
        """The same error with ``prefix`` put in front of its field path."""
        joined = (
            f"{prefix}.{self.field}"
            if self.field and not self.field.startswith("[")
            else (f"{prefix}{self.field}")
        )
        return ValidationError(joined, self.message)


class NotFoundError(OOMLError, KeyError):
    """A name or id that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownPolicyError(NotFoundError):
    """No policy is registered under that name."""


class UnknownRewardRuleError(NotFoundError):
    """No reward rule is registered under that name."""


class StateError(OOMLError):
    """Learned state that cannot be used: wrong schema version, dimension or encoder."""


class RegistryError(OOMLError):
    """A registry refuses to publish a name twice: names are never reused."""


class ConflictError(OOMLError):
    """An id that must be new (an event id, a run id) already exists."""


class PromotionRefusedError(ConflictError):
    """The promotion gate refused a challenger; ``details`` holds the numbers behind it."""

    def __init__(self, message: str, details: dict[str, object]) -> None:
        super().__init__(message)
        self.details = details


class StoreError(OOMLError):
    """The database failed, or its schema is not the one this version expects."""


class ConfigurationError(OOMLError, ValueError):
    """A hyper-parameter, setting or rule table that cannot work (e.g. ε outside [0, 1])."""
