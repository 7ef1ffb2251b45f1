# Two entry points for a fresh machine:  `make run`  and  `make test`.
# Both create .venv, install torch first (pinned, see requirements/torch.txt), then the
# project with exact versions from requirements/constraints.txt.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ARGS    ?=

.PHONY: run test lint sysdeps clean screenshot package

$(STAMP): pyproject.toml requirements/torch.txt requirements/constraints.txt
	@bash packaging/sysdeps.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -r requirements/torch.txt
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dermviewer $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check engine training dermviewer resources tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(ARGS)

screenshot: $(STAMP)
	xvfb-run -a $(BIN)/python tests/screenshot.py

# Linux desktop build, dist/dermviewer/ (PyInstaller, packaging/build.sh): run before each release, not in CI.
package: $(STAMP)
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e ".[dev,package]"
	bash packaging/build.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
