# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv when it is missing and install mleval into it; a second run
# skips the install unless pyproject.toml or setup.py changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mleval-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test lint fuzz bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: setup
	$(BIN)/mleval demo

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# One-way layers (docs/architecture.md): no import cycle, no broken layer rule, SQL only in mleval/catalog.
lint:
	$(PYTHON) tools/layers.py

# The property tests with many more examples than `make test` runs (MLEVAL_FUZZ_PROFILE, tests/fuzz/conftest.py).
fuzz: setup
	MLEVAL_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest tests/fuzz $(PYTEST_ARGS)

bench: setup
	for script in benchmarks/[a-z]*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
