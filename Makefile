# Whistle: `make run` serves the portal, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run serve test lint audit format bench dist clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/whistle init --if-missing
	$(BIN)/whistle setup-link
	$(BIN)/whistle run --host 127.0.0.1 --port 5000

# Production serving (docs/deploy.md): migrate, then gunicorn as whistle/gunicorn_conf.py tunes it.
serve: $(INSTALLED)
	exec $(BIN)/whistle serve

lint: $(INSTALLED)
	$(BIN)/ruff check whistle tests migrations tools bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff format --check whistle tests migrations tools bench wsgi.py gunicorn.conf.py
	$(BIN)/mypy whistle bench

audit: $(INSTALLED)
	$(BIN)/python tools/audit_dependencies.py

# axe-core for the accessibility audits in the browser tests (skipped, with the reason, without npm).
AXE := tests/browser/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/package-lock.json
	-command -v npm >/dev/null && npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

test: lint $(AXE)
	$(BIN)/python -m pytest --cov --cov-report=term

bench: $(INSTALLED) ; $(BIN)/python bench/run.py $(BENCH)

# A release's files (README, "Making a release"): the sdist and the wheel, in dist/.
dist: $(INSTALLED)
	rm -rf dist
	$(BIN)/python -m build --outdir dist

format: $(INSTALLED)
	$(BIN)/ruff format whistle tests migrations tools bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff check --fix whistle tests migrations tools bench wsgi.py gunicorn.conf.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage dist build whistle.egg-info
