# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench stress clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dropbox-importer demo --dir demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -n 4 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench

stress: $(STAMP)
	DROPBOX_IMPORTER_STRESS=1 $(BIN)/pytest tests/stress -s -p no:cacheprovider --timeout 1800

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
