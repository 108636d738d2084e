# Nudge: `make demo` runs the service's story on the embedded default; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# Quiet installs: the first thing `make demo` shows is the demo, not pip's or setuptools' chatter.
PIP := $(BIN)/python -m pip --quiet --quiet --disable-pip-version-check
PYBABEL := $(BIN)/pybabel
KEYWORDS := -k _ -k __ -k N_ -k ngettext:1,2 -k lazy_ngettext:1,2

.PHONY: install lock demo serve test lint format locales locales-extract locales-compile bench clean

# Exactly the locked versions, checked against their hashes; then Nudge itself, built with the
# locked setuptools (no build isolation, so nothing unlocked is fetched).
$(STAMP): $(LOCK) pyproject.toml setup.py
	@echo "Setting up $(VENV) from $(LOCK) (once, about 30 s)…"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) install --require-hashes --no-deps -r $(LOCK)
	@$(PIP) install --no-deps --no-build-isolation -e . 2>$(VENV)/build.log \
		|| { cat $(VENV)/build.log; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

# Refresh the lock on purpose (newest versions the ranges in pyproject.toml allow), in its own
# commit, with `make test` green. The lock is universal: any OS, Python 3.11 and newer.
LOCK_ARGS ?= --upgrade
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --quiet --custom-compile-command "make lock" $(LOCK_ARGS) -o $(LOCK)

demo: $(STAMP)
	$(BIN)/nudge demo $(DEMO_ARGS)

serve: $(STAMP)
	$(BIN)/nudge serve --migrate

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Extract msgids from the sources, merge them into every catalog, compile the .mo files.
locales: locales-extract locales-compile

locales-extract: $(STAMP)
	$(PYBABEL) extract -F babel.cfg $(KEYWORDS) --add-location=file --sort-output --width=99 --project=Nudge --copyright-holder="Nudge contributors" \
		--omit-header -o locales/messages.pot .
	for l in en ru uk pl; do \
		if [ -f locales/$$l/LC_MESSAGES/messages.po ]; then \
			$(PYBABEL) update -i locales/messages.pot -d locales -l $$l --no-fuzzy-matching --ignore-obsolete --width=99 \
				--ignore-pot-creation-date; \
		else \
			$(PYBABEL) init -i locales/messages.pot -d locales -l $$l; \
		fi; \
	done

locales-compile: $(STAMP)
	$(PYBABEL) compile -d locales --statistics

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
