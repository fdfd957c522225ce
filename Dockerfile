# Reservo production image: gunicorn behind your TLS-terminating proxy, static files by
# whitenoise. Configure with DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS,
# RESERVO_PUBLIC_URL and RESERVO_EMAIL_URL (README, docs/security.md): it refuses to start
# without them. It holds the runtime packages only, installed from the lock file with their
# hashes; .dockerignore keeps local data, secrets, .venv and .git out of it.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --system reservo && useradd --system --gid reservo --home /app reservo
WORKDIR /app

COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --require-hashes -r requirements/runtime.txt

COPY . .
# The translations, compiled from locale/*/LC_MESSAGES/*.po with Python alone.
RUN python -m reservo.catalogues
# collectstatic needs settings but no database, mail server or key: placeholders. The code
# and the collected files stay root's: the app only reads them.
RUN DATABASE_URL=postgres://build@build.invalid/build REDIS_URL=redis://build.invalid:6379/0 \
    SECRET_KEY=build-only RESERVO_PUBLIC_URL=https://build.invalid RESERVO_EMAIL_URL=dummymail:// \
    python manage.py collectstatic --noinput -v0

USER reservo
EXPOSE 8000
# The probe names the first of ALLOWED_HOSTS and says it came over HTTPS, as the proxy does.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import os, urllib.request; host = os.environ.get('ALLOWED_HOSTS', 'localhost').split(',')[0].lstrip('.*') or 'localhost'; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:8000/healthz', headers={'Host': host, 'X-Forwarded-Proto': 'https'}), timeout=2)"
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn -c reservo/gunicorn_conf.py reservo.wsgi:application"]
