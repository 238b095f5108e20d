# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PORT ?= 8000
# The URL `make run` serves on: printed by seed_demo and shown by the admin (the inbox's
# webhook URL), so both follow PORT unless SITE_URL is given.
RUN_SITE_URL = $(or $(SITE_URL),http://127.0.0.1:$(PORT))
PYTEST_ARGS ?=

.PHONY: run test lint format bench venv messages clean

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Atende needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	SITE_URL=$(RUN_SITE_URL) $(PY) manage.py seed_demo
	SITE_URL=$(RUN_SITE_URL) $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Every benchmark on the production stack on 127.0.0.1 (bench/all.sh: about 40 minutes, plus
# about 6 to build the console's 100,000-conversation database the first time); figures go to
# docs/benchmarks.md. BENCH_ONLY="webhooks console-ws console-pages bot" picks some.
bench: venv
	bash bench/all.sh

# Refresh and compile the translation catalogues (the compiled .mo files are committed).
messages: venv
	$(PY) manage.py makemessages --locale pt_BR --locale en --ignore '.venv/*' --ignore 'staticfiles/*'
	$(PY) manage.py compilemessages --ignore '.venv/*'

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
