# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv when missing, installs dcgan, trains the digits demo
#   make test   creates .venv when missing, installs dcgan with its test tools, runs the suite
# and one more for the explorer's browser tests, which are skipped without it:
#   make browser  installs Debian's Chromium (Playwright drives it; nothing downloads a browser)
# and one that CI also runs, so that a second CPU path stays tested whatever CPU runs it:
#   make test-avx2  the kernel-sensitive tests (marker `kernels`) again on PyTorch's and oneDNN's AVX2
#                   code paths, as an AVX2-only CPU runs them (fp32, no bf16 or AMX kernels)
# and the documentation site, which CI builds too:
#   make docs   installs the docs extra (MkDocs) when missing and builds site/ strictly: a broken link fails
# and the checks of the code itself, which CI runs too:
#   make lint   installs the lint extra (ruff, mypy) when missing; ruff's linter and formatter, then mypy
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-avx2 docs lint install browser clean

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/dcgan train

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-avx2: $(BIN)/.installed
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m pytest -q -m kernels

$(BIN)/.docs-installed: pyproject.toml constraints.txt $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[docs]"
	touch $@

docs: $(BIN)/.docs-installed
	$(BIN)/mkdocs build --strict --site-dir site

$(BIN)/.lint-installed: pyproject.toml constraints.txt $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[lint]"
	touch $@

lint: $(BIN)/.lint-installed
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs
	$(BIN)/mypy

browser:
	@command -v chromium >/dev/null 2>&1 && chromium --version 2>/dev/null || { \
	  $(SUDO) apt-get install -y --no-install-recommends chromium || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }; }

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
