# Every target sets itself up on a fresh machine: uv (from PyPI) builds .venv from uv.lock.
SHELL := /bin/bash
VENV := .venv
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(VENV)/bin

.PHONY: setup test lint demo bench clean

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

setup: $(UV)
	$(UV) sync --locked --all-extras --group dev --compile-bytecode --quiet
	@# uv compiles site-packages; our own package is editable, so compile it too (PYTHONDONTWRITEBYTECODE
	@# machines would otherwise recompile every module of shipyard in every process)
	$(RUN)/python -m compileall -q -j 0 shipyard

lint: setup
	$(RUN)/ruff check shipyard tests bench examples
	$(RUN)/lint-imports

test: lint
	$(RUN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

demo: setup
	PATH="$(CURDIR)/$(RUN):$$PATH" bash scripts/demo.sh

bench: setup
	PATH="$(CURDIR)/$(RUN):$(dir $(UV)):$$PATH" $(RUN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
