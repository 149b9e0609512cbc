# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install elig, explain a bundled example patient
#   make test   - create .venv, install elig with test and docs extras, run everything
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv docs bench clean chromium java fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/elig check protocols/
	$(BIN)/elig explain protocols/NCT06021067.elig examples/patients/demo_patient.yaml --as-of 2024-03-15

test: $(STAMP) chromium java
	$(BIN)/python -m pytest
	$(BIN)/elig check protocols/ examples/trials/
	$(BIN)/elig lint protocols/ examples/trials/
	$(BIN)/elig fmt --check protocols/ examples/trials/
	$(BIN)/elig test protocols/
	$(BIN)/elig test examples/trials/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# The long fuzz profile (tests/test_fuzz.py; make test runs the quick one): 2,500 random
# inputs per property, 12,500 in all, about 10 minutes on one core.
fuzz: $(STAMP)
	ELIG_FUZZ=long $(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

bench: $(STAMP)
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_readers.py
	$(BIN)/python bench/bench_screen.py
	$(BIN)/python bench/bench_sql.py
	$(BIN)/python bench/bench_views.py

clean:
	rm -rf $(VENV) build .pytest_cache

# The HTML report is tested in a real browser: Debian's chromium, installed where missing
# (CI runs as root on a fresh machine). Without it the browser tests skip with a reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium could not be installed: the browser tests will be skipped"

# Spark (elig screen --engine spark, and its test) runs on Java 17: Debian's headless JRE,
# installed where no java is found. Without it the Spark test is skipped with a reason.
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; } \
	  || echo "Java 17 could not be installed: the Spark test will be skipped"
