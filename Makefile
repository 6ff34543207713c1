# Two commands do everything on a fresh machine (Python 3.11 + pip):
#   make run    start the whole system on embedded defaults (Ctrl-C stops it)
#   make test   install what the tests need and run them
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint format bench clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python "$$(command -v $(PYTHON))"
	touch $@

run: $(VENV)/.synced
	$(VENV)/bin/python -m devstack

test: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: $(VENV)/.synced
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.synced
	$(UV) sync --frozen --all-groups --python "$$(command -v $(PYTHON))"
	$(VENV)/bin/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
