# The two commands of the README. Each creates .venv and installs on first use
# (and again when setup.py or constraints.txt change), then runs.
#   make demo   train a small CycleGAN on a generated dataset, export, translate
#   make test   the whole test suite
# and, while developing:
#   make test-fast   the tests not marked `slow` (unit tests: under 2 minutes on 2 cores)
#   make lint        ruff, with the rules chosen in pyproject.toml

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

demo: $(INSTALLED)
	$(BIN)/tfcyclegan demo

# Two pytest workers (pytest-xdist): the tests' tiny models keep about one core busy
# (a sequential run's CPU time equals its wall time), so on 2 cores two processes halve
# the wall time. More workers than cores only oversubscribe TensorFlow's thread pools.
# --dist loadfile keeps each file on one worker, so a module's fixtures (a trained run,
# an export) are built once: with worksteal they were rebuilt whenever a worker came back
# to the file (test_export's export three times, ~55 s each); 11:08 -> 9:40 for the whole
# suite on 2 idle cores (AMD EPYC, AVX-512), CPU time 19.0 -> 15.9 min.
TEST_WORKERS ?= 2

test: $(INSTALLED)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The `slow` marker sits on every test that took over ~4 s (end-to-end training, export,
# the reference networks); CI still runs them through `make test`.
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

lint: $(INSTALLED)
	$(BIN)/ruff check .

bench: $(INSTALLED)
	$(BIN)/python benchmarks/run_all.py

$(INSTALLED): setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,torch]" -c constraints.txt
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
