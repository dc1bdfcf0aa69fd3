"""Settings to run the example shop on its own, against the sandbox (two terminals, from the
repository root)::

    paygate sandbox --forward-to http://127.0.0.1:8000/shop/webhooks/paygate/
    python -m django runserver --settings examples.django_shop.settings

In your own project, add ``"examples.django_shop"`` (your copy of it) to ``INSTALLED_APPS``,
include its urls, and set the three ``PAYGATE``/``SHOP_*`` settings below. Secrets stay in
the environment (``PAYGATE_<PROVIDER>_<SETTING>``); nothing here prints them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(os.environ.get("SHOP_DATA_DIR", Path.cwd()))

# A throw-away key when none is given: sessions and CSRF tokens do not survive a restart.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")

INSTALLED_APPS = ["examples.django_shop"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "examples.django_shop.project_urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.csrf"]},
    }
]
DATABASES: dict[str, dict[str, str]] = {}  # the shop keeps its orders with plain sqlite3
USE_TZ = True

# --8<-- [start:paygate]
# paygate: None -> Gateway.from_env() (PAYGATE_PROVIDER, PAYGATE_STORE_URL,
# PAYGATE_<PROVIDER>_<SETTING>), or the running sandbox when no provider is configured;
# or a dict for Gateway.from_config without secrets in it.
PAYGATE = None
SHOP_DB_PATH = str(BASE_DIR / "shop.db")
SHOP_RECEIPT_SENDER = "examples.django_shop.shop.log_receipt"
# --8<-- [end:paygate]
