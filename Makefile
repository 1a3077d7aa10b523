# Set-up and entry points. `make reproduce` and `make test` each create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= standard
TEST_RESULTS := $(CURDIR)/build/test-results

.PHONY: install data reproduce test notebooks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 10) else "corex_edu needs Python >= 3.10, found %d.%d; set PYTHON=python3.11 (or newer)" % v[:2])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

data: install
	$(BIN)/python -m corex_edu data fetch mnist

reproduce: data
	$(BIN)/python -m corex_edu reproduce --profile $(PROFILE) $(ARGS)

# Unit tests, then every notebook under nbval with the quick profile, in a fresh results folder
# so that no checkpoint from an earlier run is reused.
test: data
	rm -rf $(TEST_RESULTS)
	COREX_EDU_PROFILE=quick COREX_EDU_RESULTS=$(TEST_RESULTS) COREX_EDU_PROGRESS=0 \
		$(BIN)/python -m pytest --nbval-lax tests notebooks

# Regenerate the outputs committed in notebooks/ with the standard profile.
notebooks: data
	for notebook in notebooks/*.ipynb; do \
		COREX_EDU_PROFILE=standard COREX_EDU_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=3600 "$$notebook" || exit 1; \
	done

clean:
	rm -rf $(VENV) build results
