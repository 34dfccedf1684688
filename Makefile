# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DB ?= data/scenepush.duckdb
PORT ?= 8501

.PHONY: run test setup setup-dev db model bench browser clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel on disk; an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# The sample database is built from the shipped Parquet files when missing.
$(DB): | $(VENV)/.installed
	RECSYS_DB=$(DB) $(PY) -m recsys_core sample --db $(DB)

db: $(DB)

run: setup $(DB)
	RECSYS_DB=$(DB) $(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

# Debian Chromium (and a CJK font, so Chinese renders) for the real-browser tests; never `playwright install`.
browser:
	@(command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .) || \
		(apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk >/dev/null)

test: setup-dev browser
	$(PY) -m pytest -q

# Retrain the bundled model reproducibly on the sample world.
model: setup $(DB)
	$(PY) -m recsys_core train --model context_transformer --protocol next_session --db $(DB) --out sample_data/models/context_transformer --seed 7

bench: setup $(DB)
	$(PY) -m recsys_core bench --db $(DB) --json

clean:
	rm -rf $(VENV) data
