# infertune — developer and demo entry points. Each target creates/uses .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench bench-quick lint typecheck clean-home help

help:
	@echo "make demo       create .venv, install, tune the demo model and print the verified front"
	@echo "make test       create .venv, install, run lint, type checks and the whole test suite"
	@echo "make test-fast  the test suite without the slow tests"
	@echo "make bench      benchmarks (speed-up, search efficiency, repeatability, overhead); JSON in benchmarks/results"
	@echo "make bench-quick  the same with fewer repeats, seeds and trials"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "Installing infertune and its dependencies (TensorFlow, LiteRT, MLflow, Optuna): a few minutes the first time..."
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/infertune tune demo:digits-midcnn --space quick --trials 15

bench: $(STAMP)
	$(BIN)/python benchmarks/speedup.py --repeats 5
	$(BIN)/python benchmarks/best_speedup.py --repeats 5
	$(BIN)/python benchmarks/search_efficiency.py --seeds 10
	$(BIN)/python benchmarks/repeatability.py --repeats 5
	$(BIN)/python benchmarks/overhead.py --trials 15

# Fewer repeats and seeds; reuses the search-efficiency table measured on this host if any.
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/speedup.py --repeats 2 --min-duration 1
	$(BIN)/python benchmarks/best_speedup.py --models demo:digits-cnn --trials 8 --repeats 2
	$(BIN)/python benchmarks/search_efficiency.py --seeds 3 --reuse-table
	$(BIN)/python benchmarks/repeatability.py --repeats 3 --windows 0.5:50,3:500
	$(BIN)/python benchmarks/overhead.py --trials 6

lint: $(STAMP)
	$(BIN)/ruff check platform tests benchmarks migrations dashboards
	$(BIN)/ruff format --check platform tests benchmarks migrations dashboards

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

clean-home:
	rm -rf .infertune
