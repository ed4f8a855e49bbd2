# Every target creates what it needs: a fresh clone runs `make demo` or `make test` directly.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/demo
SAMPLE := tests/data/sample-shirt.jpg

.PHONY: install demo dev test lint format typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[background,segmentation,generative,tryon,cloud,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/closet run $(SAMPLE) --out $(OUT)

# Emulators and every function on this machine; Ctrl-C stops them all.
dev: $(STAMP)
	$(BIN)/closet dev --state .closet-dev.json

# Every measure against its target (about 15 minutes); writes bench/results/.
bench: $(STAMP)
	$(BIN)/closet bench --json bench/results/bench.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests

test: lint typecheck unit

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) out .mypy_cache .pytest_cache .ruff_cache
