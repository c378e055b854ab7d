# HARD Lab. `make run` installs and starts the lab; `make test` installs and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
RUN    ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: run demo test install install-dev chromium assets clean

run: install
	$(BIN)/python -m streamlit run app/streamlit_app.py --server.port $(PORT)

demo: install   # the same distillation, headless, printing progress in the terminal
	$(BIN)/python -m hard_core train --dataset mnist5k --canvas 40 --teacher default --student mlp \
		--hard affine --steps 600 --out $(RUN)

test: install-dev chromium
	$(BIN)/python -m pytest -q

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The real-browser test drives Debian's Chromium through Playwright (never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -q && apt-get install -y -q chromium chromium-driver; } \
	|| { echo "error: the browser test needs /usr/bin/chromium: sudo apt-get install -y chromium chromium-driver"; exit 2; }

assets: install
	$(BIN)/python -m hard_core assets

clean:
	rm -rf $(VENV) .pytest_cache
