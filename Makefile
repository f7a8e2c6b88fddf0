# The two commands a new user needs: `make demo` and `make test`. Each sets up the environment first
# when it is missing (a virtualenv in .venv with the pinned torch/torchaudio pair and holdtts itself).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.holdtts-installed
# Test workers: the CI machine has 2 cores.
TEST_WORKERS ?= 2

.PHONY: all install demo test test-fast bench lint clean-venv help

help:
	@echo "make demo    - run egs/ljspeech/run.sh --corpus mini end to end on the CPU (offline)"
	@echo "make test    - run the test suite"
	@echo "make bench   - run the benchmarks under bench/ (prints tables)"
	@echo "make lint    - ruff"
	@echo "make install - create $(VENV) and install holdtts into it (done by the targets above)"

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch and torchaudio first, as a matching pair, so nothing else can pull a different torch.
	$(PY) -m pip install "torch==2.9.1" "torchaudio==2.9.1"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	cd egs/ljspeech && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./run.sh --corpus mini

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) tests

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(PY) -m ruff check holdtts tests bench

clean-venv:
	rm -rf $(VENV)
