# Every target creates the virtualenv it needs; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PEER := .peer/hud

.PHONY: demo test test-deps lint fmt peer peer-harbor bench screenshots clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# Before the rename to "openhud" this tree installed as distribution "hud": drop that one.
	$(BIN)/pip uninstall -q -y hud 2>/dev/null || true
	$(BIN)/pip install -q -e '.[dev,platform]'
	touch $@

venv: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/hud eval examples/quickstart/tasks.py oracle --all --yes

# Installs what the suite needs first (as .ci/run does): the official peer packages and, as root,
# the Debian packages and Docker; so a fresh clone's `make test` runs what CI runs.
# The `ray` extra (~240 MB, ~30 s) for the two-node Ray test (tests/platform/test_ray.py).
$(BIN)/.ray: $(BIN)/.installed
	$(BIN)/pip install -q 'ray>=2.40,<3'
	touch $@

test: $(BIN)/.installed $(BIN)/.ray test-deps
	$(BIN)/pytest -q

test-deps:
	bash .ci/test-deps.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The official hud package, used as a black box for interop tests and benchmarks.
$(PEER)/.installed:
	PYENV_VERSION=3.12.1 python3.12 -m venv $(PEER)
	$(PEER)/bin/pip install -q hud==0.6.21 typer==0.28.0
	touch $@

peer: $(PEER)/.installed

# The official harbor CLI (its certifi pin is newer than the registry here: install --no-deps).
HARBOR := .peer/harbor
$(HARBOR)/.installed:
	PYENV_VERSION=3.12.1 python3.12 -m venv $(HARBOR)
	$(HARBOR)/bin/pip install -q --no-deps harbor==0.25.0
	$(HARBOR)/bin/pip install -q certifi 'pydantic>=2.12' shortuuid typer requests pyyaml rich \
	  toml tenacity python-dotenv 'litellm>=1.92' jinja2 dirhash packaging semver fastapi \
	  uvicorn pathspec supabase httpx filelock platformdirs pyjwt jsonschema
	touch $@

peer-harbor: $(HARBOR)/.installed

bench: $(BIN)/.installed $(PEER)/.installed
	$(BIN)/python bench/run_all.py

# The web pages' screenshots in docs/images (a throwaway platform, Playwright + system Chromium).
screenshots: $(BIN)/.installed
	$(BIN)/python docs/make_screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
