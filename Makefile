# Two entry points, both self-contained on a fresh machine with Python 3.11+:
#   make test   venv + install + ruff + mypy (strict) + pytest
#   make demo   venv + install + one real training run on the embedded stack
#   make screenshots   the dashboard's pages as PNGs in docs/screenshots/ (needs chromium)
#   make bench  venv + install + the performance benchmarks (issue 13), one table (~10 min)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench lint typecheck pytest clean screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo 'installing the project and its dependencies into $(VENV) (a few minutes the first time)'
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -e '.[dev,examples]'
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/orchestrator demo

# The browser tests, collecting a screenshot of every page they visit.
screenshots: $(STAMP)
	UI_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/integration/test_ui_browser.py
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache artifacts
