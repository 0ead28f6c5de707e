"""The HTTP API: ``create_app(settings)``."""

from oo_ml.api.app import create_app

__all__ = ["create_app"]
