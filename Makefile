# One command per job; each sets up what it needs from a clean checkout.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: demo test bench bench-spark venv bytecode chromium java clean

# Debian's python3 may lack ensurepip (package python3-venv); fall back to virtualenv from PyPI.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
		$(PYTHON) -m pip install --quiet --user virtualenv 2>/dev/null || \
		$(PYTHON) -m pip install --quiet --user --break-system-packages virtualenv; \
		$(PYTHON) -m virtualenv --quiet $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# The Spark engine's tests need the [spark] extra (pyspark builds a ~450 MB wheel the first time,
# about 70 s; pip caches it) and a JRE.
$(VENV)/.installed-spark: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,spark]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed

venv: $(VENV)/.installed bytecode

# The project's own modules compiled to bytecode, as pip compiles an installed (not editable)
# package's: an environment with PYTHONDONTWRITEBYTECODE set (this workplace's machines have it)
# otherwise compiles all 65 from source in every run, 0.13 s of a run's 1.0 s fixed cost
# (docs/performance.md, session 26). Python still checks each file's bytecode against its source,
# so an edited module is never run stale: it is compiled again (here, or in memory by each run).
bytecode: | $(BIN)/python
	$(BIN)/python -m compileall -q audit schemas reports

demo: $(VENV)/.installed bytecode
	@mkdir -p $(dir $(OUT))  # nice-audit creates --out, never a missing parent (it may be an unmounted share)
	$(BIN)/nice-audit run examples/ --mapping examples/warehouse_mapping.toml --out $(OUT)

test: $(VENV)/.installed-spark bytecode java chromium
	$(BIN)/python -m pytest

# Seeded HES-style exports (five mixes, wide and long), the full audit timed against polars merely
# reading them, against DuckDB and a pandas row loop, and the CLI's fixed costs (about 10 minutes).
# BENCH_ARGS="--episodes 100000,1000000,10000000" for the national-scale sweep.
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed

bench: $(VENV)/.installed-bench bytecode
	$(BIN)/python tests/benchmarks/bench.py $(BENCH_ARGS)

# The local engine against --engine spark (local[2], warm) on the same 1M-episode Parquet file.
bench-spark: $(VENV)/.installed-spark bytecode java
	$(BIN)/python tests/benchmarks/spark_bench.py $(BENCH_ARGS)

# The report's browser tests drive Debian's headless Chromium; install it when we can (root with
# apt-get), otherwise those tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing chromium for the browser tests (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
				|| echo "chromium could not be installed: browser tests will be skipped"; \
		else echo "chromium not found and not root: browser tests will be skipped"; fi; }

# Spark runs on the JVM: Debian's default-jre-headless (OpenJDK 17 on bookworm) when java is
# missing and we can install it (root with apt-get); otherwise the Spark tests skip and say why.
java:
	@command -v java >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing a Java runtime for the Spark tests (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null \
				|| echo "Java could not be installed: Spark tests will be skipped"; \
		else echo "java not found and not root: Spark tests will be skipped"; fi; }

clean:
	rm -rf $(VENV) out .pytest_cache
