# Two entry points for a fresh machine (Python 3.11 and Java 17 present):
#   make demo   - virtualenv, install, generate sample data, run the whole pipeline
#   make test   - virtualenv, install, Debian services for the tests, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install services bench docs clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[spark,test]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash .ci/install-services.sh

demo: $(STAMP)
	$(BIN)/cdp demo --config conf/local.yaml

test: $(STAMP) services
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[spark,test,bench]'
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

docs: $(STAMP)
	$(BIN)/python -m jobs.docs

clean:
	rm -rf lakehouse data/sample spark-warehouse
