# Copydesk: `make run` serves the embedded setup, `make test` runs the whole suite.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
SNMPSIM := $(VENV)/snmpsim
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000
COLLECTOR_HOST ?= 127.0.0.1
COLLECTOR_PORT ?= 9443

.PHONY: run test lint format worker collector install install-dev translations messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.installed

# The tests' SNMP agent simulator (snmpsim) lives in a venv of its own: its pins differ from the app's.
$(SNMPSIM)/.installed: requirements-snmpsim.txt | $(BIN)/python
	$(PYTHON) -m venv $(SNMPSIM)
	$(SNMPSIM)/bin/pip install -q -r requirements-snmpsim.txt
	touch $@

install: $(VENV)/.installed translations
install-dev: $(VENV)/.installed-dev $(SNMPSIM)/.installed translations

# Compile the gettext catalogues (.po -> .mo) of core and of every module.
translations: $(VENV)/.installed
	@for dir in core/translations modules/*/translations; do \
		if [ -d "$$dir" ]; then $(BIN)/pybabel -q compile -d "$$dir" || exit 1; fi; \
	done

# Extract every marked string (babel.cfg) into core/translations/messages.pot, then merge it into each language's
# catalogue (created when missing). Translate the new entries in the it and es .po files afterwards (docs/i18n.md).
LANGUAGES      := it en es
BABEL_KEYWORDS := _l lazy_gettext _n:1,2 lazy_ngettext:1,2
messages: $(VENV)/.installed
	PYTHONPATH=. $(BIN)/pybabel -q extract -F babel.cfg $(addprefix -k ,$(BABEL_KEYWORDS)) --add-location=file \
		--project=Copydesk --copyright-holder=Copydesk -o core/translations/messages.pot .
	@for lang in $(LANGUAGES); do \
		$(BIN)/pybabel -q update -i core/translations/messages.pot -d core/translations -l $$lang \
			--init-missing --ignore-obsolete --no-fuzzy-matching || exit 1; \
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

# The device collector: the TLS service the MFPs talk to (docs/device-protocol.md).
collector: install
	$(FLASK) db upgrade
	$(FLASK) device-collector --host $(COLLECTOR_HOST) --port $(COLLECTOR_PORT)

clean:
	rm -rf $(VENV) instance
