# Nudge: `make demo` runs the service's story on the embedded default; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYBABEL := $(BIN)/pybabel
KEYWORDS := -k _ -k __ -k ngettext:1,2 -k lazy_ngettext:1,2

.PHONY: install demo serve test lint format locales locales-extract locales-compile bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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
	$(PYBABEL) extract -F babel.cfg $(KEYWORDS) --add-location=file --sort-output --project=Nudge --copyright-holder="Nudge contributors" \
		--omit-header -o locales/messages.pot .
	for l in en ru uk pl; do \
		if [ -f locales/$$l/LC_MESSAGES/messages.po ]; then \
			$(PYBABEL) update -i locales/messages.pot -d locales -l $$l --no-fuzzy-matching \
				--ignore-pot-creation-date; \
		else \
			$(PYBABEL) init -i locales/messages.pot -d locales -l $$l; \
		fi; \
	done

locales-compile: $(STAMP)
	$(PYBABEL) compile -d locales --statistics

bench: $(STAMP)
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
