"""A small FastAPI shop on paygate: ``uvicorn --factory examples.fastapi_shop:create_app``."""

from examples.fastapi_shop.app import create_app

__all__ = ["create_app"]
