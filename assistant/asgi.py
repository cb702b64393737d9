"""The web process's application, served by gunicorn with the ASGI worker of
`common/webserver.py` (gunicorn.conf.py names both)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
# Each request's code runs in a thread of its own here: connections come from a pool.
os.environ.setdefault("DATABASE_POOL", "true")
application = get_asgi_application()
