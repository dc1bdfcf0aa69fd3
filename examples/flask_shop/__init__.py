"""A small Flask shop on paygate: ``flask --app examples.flask_shop run``."""

from examples.flask_shop.app import create_app

__all__ = ["create_app"]
