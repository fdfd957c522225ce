# Reservo: `make run` for the demo, `make test` for the suite. Needs only Python >= 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
CHAOS_STAMP := $(VENV)/.installed-chaos
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install messages lock run serve test test-tools lint bench chaos stop clean

# One install for each set of packages, made again only when its lock file or pyproject.toml
# changes. Each set is installed from its lock file in requirements/: every package pinned,
# with its hashes, for Python >= 3.11 on any platform (`make lock` makes them again from
# pyproject.toml). Production needs the runtime set only; the embedded PostgreSQL and Redis
# come with the demo's set, and the suite's tools (pytest, mypy, Playwright, ...) with the
# suite's. The benchmark needs none of the suite's tools: not installing them saves a fresh
# clone's `make bench` 20-odd seconds.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEMO_STAMP := $(VENV)/.installed-demo
STAMPS := $(RUNTIME_STAMP) $(DEMO_STAMP) $(STAMP) $(BENCH_STAMP) $(CHAOS_STAMP)
$(RUNTIME_STAMP): LOCK := requirements/runtime.txt
$(DEMO_STAMP): LOCK := requirements/demo.txt
$(STAMP): LOCK := requirements/dev.txt
$(BENCH_STAMP): LOCK := requirements/bench.txt
$(CHAOS_STAMP): LOCK := requirements/chaos.txt
$(RUNTIME_STAMP): requirements/runtime.txt
$(DEMO_STAMP): requirements/demo.txt
$(STAMP): requirements/dev.txt
$(BENCH_STAMP): requirements/bench.txt
$(CHAOS_STAMP): requirements/chaos.txt
UV_VERSION := 0.13.9
# uv installs what pip would in a third of the time (a fresh clone's `make bench`: 12 s
# against 38 s). It reads none of pip's settings (pip.conf, PIP_INDEX_URL): where it cannot
# install, pip does, as it is configured, from the same lock file and hashes.
$(STAMPS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)" \
		&& $(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode --require-hashes -r $(LOCK) \
		|| { echo "uv could not install; installing with pip"; \
			$(PY) -m pip install --quiet --upgrade pip \
			&& $(PY) -m pip install --quiet --require-hashes -r $(LOCK); }
	touch $@

install: $(STAMP) messages

# The French and German translations (locale/<language>/LC_MESSAGES/django.po), compiled to
# the .mo files Django reads whenever a .po file changes. Python alone compiles them
# (reservo/catalogues.py, standard library only): no GNU gettext needed. The .mo files are
# built, never committed. After changing translatable strings: `$(PY) manage.py makemessages
# -l fr -l de -i .venv -i bench -i chaos -i tests`, translate, then `make messages`.
MESSAGES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))
$(MESSAGES): %.mo: %.po reservo/catalogues.py
	$(PYTHON) -m reservo.catalogues $<
messages: $(MESSAGES)

# Pin every package again, to the newest versions pyproject.toml allows (versions already in
# a lock file are kept where they still fit: delete it to move them all), with their hashes.
lock:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	for set in runtime: demo:embedded dev:embedded,dev bench:embedded,bench chaos:embedded,chaos; do \
		extras=$$(echo "$${set#*:}" | tr , ' '); \
		$(VENV)/bin/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
			--generate-hashes $$(for extra in $$extras; do echo --extra $$extra; done) \
			-o requirements/$${set%%:*}.txt || exit 1; \
	done

# The demo: the embedded servers, no test tools. It refuses DATABASE_URL and REDIS_URL.
run: $(DEMO_STAMP) messages
	$(PY) -m reservo.demo

# Production-style: the runtime packages only when DATABASE_URL and REDIS_URL are set; the
# embedded servers otherwise.
serve: $(if $(and $(DATABASE_URL),$(REDIS_URL)),$(RUNTIME_STAMP),$(DEMO_STAMP)) messages
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/gunicorn -c reservo/gunicorn_conf.py reservo.wsgi:application

# The suite uses the embedded servers unless DATABASE_URL / REDIS_URL are set, and stops
# them afterwards if it was the one that started them.
# System tools some tests drive (PgBouncer, faketime; Chromium for browser tests): installed
# from Debian's packages when missing and running as root; those tests skip loudly otherwise.
test-tools:
	@if [ ! -x /usr/sbin/pgbouncer ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq pgbouncer) >/dev/null 2>&1 || echo "warning: could not install pgbouncer"; \
	fi
	@if [ ! -x /usr/bin/faketime ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq faketime) >/dev/null 2>&1 || echo "warning: could not install faketime"; \
	fi

test: $(STAMP) test-tools messages
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

bench: $(BENCH_STAMP) messages
	$(PY) -m bench $(if $(QUICK),--quick,)

# Faults under load, checked against a recorded history (chaos/): about 6½ minutes on 2
# cores from a fresh clone; SHORT=1 injects each fault once (about 2½). Results in
# chaos/results/; exits 1 on any violation.
chaos: $(CHAOS_STAMP) test-tools messages
	$(PY) -m chaos $(if $(SHORT),--profile short,)

stop: $(STAMP)
	$(PY) -m reservo.embedded stop

clean: stop
	rm -rf .reservo staticfiles
