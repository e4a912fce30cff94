# Copydesk: `make run` serves the embedded setup, `make test` runs the whole suite.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test lint format worker install install-dev translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed translations
install-dev: $(VENV)/.installed-dev translations

# Compile the gettext catalogues (.po -> .mo) of core and of every module.
translations: $(VENV)/.installed
	@for dir in core/translations modules/*/translations; do \
		[ -d "$$dir" ] && $(BIN)/pybabel compile -q -f -d "$$dir" || true; \
	done

run: install
	$(FLASK) db upgrade
	$(FLASK) demo load --if-new
	@echo ""
	@echo "  Copydesk is starting on http://$(HOST):$(PORT)"
	@echo "  Back office: http://$(HOST):$(PORT)/admin   Customer portal: http://$(HOST):$(PORT)/portal"
	@$(FLASK) demo logins
	@echo ""
	$(FLASK) run --host $(HOST) --port $(PORT)

test: install-dev
	$(BIN)/pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: install
	$(FLASK) worker

clean:
	rm -rf $(VENV) instance
