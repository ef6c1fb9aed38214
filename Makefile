# The habits people reach for. `make demo` and `make test` are all a new machine needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One stamp per extra installed: `local` is what the demo needs, `test` has everything.
STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed-local

.PHONY: install demo test quick faults bench lint format typecheck check clean

$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/notifier demo

test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

# The edit-test loop: everything but the tests marked slow (fault scenarios, the fuzzer, the
# benchmark, the wheel and the generated client), in about a minute.
quick: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

# The fault scenarios alone, ending with their report (they also run in `make test`).
faults: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/faults

# The benchmark at breach scale: BENCH_ARGS="--recipients 200000 --small 50000" for a quick run.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Style, and the import contracts of pyproject.toml (which `make test` checks too).
lint: $(STAMP)
	$(BIN)/ruff check notifier workers tests bench
	$(BIN)/ruff format --check notifier workers tests bench
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format notifier workers tests bench
	$(BIN)/ruff check --fix notifier workers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict notifier workers bench tests

check: lint typecheck test

clean:
	rm -rf $(VENV) .notifier .pytest_cache .mypy_cache .ruff_cache
