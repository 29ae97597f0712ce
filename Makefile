# infertune — developer and demo entry points. Each target creates/uses .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench bench-quick lint typecheck clean-home help mlflow-server wheel

help:
	@echo "make demo       create .venv, install, tune the demo model and print the verified front"
	@echo "make test       create .venv, install, run lint, type checks and the whole test suite"
	@echo "make test-fast  the test suite without the slow tests"
	@echo "make bench      benchmarks (speed-up, search efficiency, repeatability, overhead, pruning, serving, contention); JSON in benchmarks/results"
	@echo "make bench-quick  the same with fewer repeats, seeds and trials"
	@echo "make mlflow-server  MLflow on 127.0.0.1:5000 backed by the local PostgreSQL (many processes, no docker)"
	@echo "make wheel      build dist/infertune-*.whl (spaces, migrations and dashboard inside)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "Installing infertune and its dependencies (TensorFlow, LiteRT, MLflow, Optuna): a few minutes the first time..."
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/infertune tune demo:digits-midcnn --space quick --trials 27

bench: $(STAMP)
	$(BIN)/python benchmarks/speedup.py --repeats 5
	$(BIN)/python benchmarks/best_speedup.py --repeats 5
	$(BIN)/python benchmarks/search_efficiency.py --seeds 10
	$(BIN)/python benchmarks/repeatability.py --repeats 5
	$(BIN)/python benchmarks/overhead.py --trials 15
	$(BIN)/python benchmarks/pruning_mobilenet.py --repeats 3
	$(BIN)/python benchmarks/serving.py --repeats 3
	$(BIN)/python benchmarks/contention.py --repeats 10 --windows 20 --fronts 5

# Fewer repeats, seeds and trials, results in benchmarks/results/quick (not committed);
# reuses the search-efficiency table measured on this host if there is one.
QUICK_OUT := --out benchmarks/results/quick
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/speedup.py --repeats 2 --min-duration 0.5 $(QUICK_OUT)
	$(BIN)/python benchmarks/best_speedup.py --models demo:digits-cnn --trials 6 --repeats 2 $(QUICK_OUT)
	$(BIN)/python benchmarks/search_efficiency.py --seeds 3 --reuse-table $(QUICK_OUT)
	$(BIN)/python benchmarks/repeatability.py --repeats 3 --windows 1:100 $(QUICK_OUT)
	$(BIN)/python benchmarks/overhead.py --model demo:digits-cnn --trials 4 $(QUICK_OUT)
	$(BIN)/python benchmarks/contention.py --repeats 4 --windows 6 $(QUICK_OUT)

mlflow-server: $(STAMP)
	docker/local-mlflow-server.sh

lint: $(STAMP)
	$(BIN)/ruff check platform tests benchmarks migrations dashboards
	$(BIN)/ruff format --check platform tests benchmarks migrations dashboards

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

# setuptools reuses build/: a module moved since the last build would linger in the wheel.
wheel: $(STAMP)
	rm -rf build
	$(BIN)/python -m pip wheel --no-deps --wheel-dir dist .

clean-home:
	rm -rf .infertune
