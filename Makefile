# Reservo: `make run` for the demo, `make test` for the suite. Needs only Python >= 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install run serve test test-tools lint bench stop clean

# One install for each set of extras, made again only when pyproject.toml changes. The
# benchmark needs none of the suite's tools (pytest, mypy, Playwright, ...): not installing
# them saves a fresh clone's `make bench` 20-odd seconds.
$(STAMP): EXTRAS := dev
$(BENCH_STAMP): EXTRAS := bench
# uv installs what pip would, from the same pyproject.toml, in a third of the time (a
# fresh clone's `make bench`: 12 s against 38 s). It reads none of pip's settings
# (pip.conf, PIP_INDEX_URL): where it cannot install, pip does, as it is configured.
$(STAMP) $(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv \
		&& $(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -e ".[$(EXTRAS)]" \
		|| { echo "uv could not install; installing with pip"; \
			$(PY) -m pip install --quiet --upgrade pip \
			&& $(PY) -m pip install --quiet -e ".[$(EXTRAS)]"; }
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(PY) -m reservo.demo

serve: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/gunicorn -c reservo/gunicorn_conf.py reservo.wsgi:application

# The suite uses the embedded servers unless DATABASE_URL / REDIS_URL are set, and stops
# them afterwards if it was the one that started them.
# System tools some tests drive (PgBouncer; Chromium for browser tests): installed from
# Debian's packages when missing and running as root; those tests skip loudly otherwise.
test-tools:
	@if [ ! -x /usr/sbin/pgbouncer ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq pgbouncer) >/dev/null 2>&1 || echo "warning: could not install pgbouncer"; \
	fi

test: $(STAMP) test-tools
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "warning: could not install chromium; the browser tests will be skipped"; \
	fi
	@started=""; \
	if [ -z "$$DATABASE_URL" ] || [ -z "$$REDIS_URL" ]; then started=$$($(PY) -m reservo.embedded start) || exit 1; fi; \
	$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	case "$$started" in started*) $(PY) -m reservo.embedded stop >/dev/null;; esac; \
	exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy .

bench: $(BENCH_STAMP)
	$(PY) -m bench $(if $(QUICK),--quick,) $(if $(REFERENCES),--references,)

stop: $(STAMP)
	$(PY) -m reservo.embedded stop

clean: stop
	rm -rf .reservo staticfiles
