"""A small Django shop on paygate: an app with urls, views and settings-driven configuration.

Run it on the fake provider::

    PAYGATE_PROVIDER=fake python -m django runserver --settings examples.django_shop.settings
"""
