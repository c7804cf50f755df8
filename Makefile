# The two commands of the README: `make demo` and `make test`. Both do all set-up.
VENV ?= .venv
PY = $(VENV)/bin/python

.PHONY: setup demo test bench jars clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/sensorwatch demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

jars: setup

bench: setup
	$(PY) bench/simulator.py

clean:
	rm -rf .sensorwatch .cache jvm/kafka/target jvm/flink/target
