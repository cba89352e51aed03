# `make demo` and `make test` each set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
BACKENDS ?= jax tensorflow torch
# Test processes per backend (pytest-xdist; a test file stays in one process,
# so its module fixtures are built once). CI has 2 cores.
TEST_WORKERS ?= 2

.PHONY: install demo test lint docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[torch,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-memory demo --workdir workdir/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check keras_memory keras_memory_command.py tests benchmarks recipes
	$(VENV)/bin/ruff format --check keras_memory keras_memory_command.py tests benchmarks recipes

# The tutorials' code blocks run while the site builds (markdown-exec); a block
# that raises logs a warning, which --strict turns into a failed build. Not
# --quiet: it hides warnings from --strict, which then passes anything.
docs: $(STAMP)
	KERAS_BACKEND=jax NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

# The suite runs once per Keras backend.
test: $(STAMP) lint docs
	@for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend $(PY) -m pytest -q -p no:cacheprovider \
			-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests || exit 1; \
	done

clean:
	rm -rf $(VENV) workdir build *.egg-info
