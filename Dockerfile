# Reservo production image: gunicorn behind your TLS-terminating proxy, static files by
# whitenoise. Configure with DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS (README).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --system reservo && useradd --system --gid reservo --home /app reservo
WORKDIR /app

COPY pyproject.toml README.md ./
RUN pip install --upgrade pip && pip install .

COPY . .
# collectstatic needs settings but no database: point them at placeholders.
RUN DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    SECRET_KEY=build-only python manage.py collectstatic --noinput -v0 \
    && chown -R reservo:reservo /app

USER reservo
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn -c reservo/gunicorn_conf.py reservo.wsgi:application"]
