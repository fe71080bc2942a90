# stackhook developer commands. `make run` and `make test` install what they need the first time.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test demo bench lint clean

$(STAMP): requirements.txt requirements-dev.txt package.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm install --no-audit --no-fund --silent
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m devhost.run

demo: $(STAMP)
	$(PY) -m devhost.demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/webhook_latency.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache .mypy_cache .ruff_cache
