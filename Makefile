# The two commands of the README: `make demo` and `make test`. Both do all set-up.
VENV ?= .venv
PY = $(VENV)/bin/python

.PHONY: setup demo test check unit bench jars clean

setup:
	@scripts/bootstrap.sh

demo: setup
	@$(VENV)/bin/sensorwatch demo

# the static checks (ruff lint and format, import-linter's layer contracts), then the whole suite
test: setup check
	$(PY) -m pytest $(PYTEST_ARGS)

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# the fast unit tests alone: no broker, no Flink, no model server, no TensorFlow training
unit: setup
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

jars: setup

bench: setup
	$(PY) bench/simulator.py

clean:
	rm -rf .sensorwatch .cache jvm/kafka/target jvm/flink/target
