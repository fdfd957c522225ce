"""WSGI entry point (gunicorn serves `reservo.wsgi:application`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reservo.settings")

application = get_wsgi_application()
