# `make demo` and `make test` build their own virtual environment from nothing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# PyPI's torch build (it runs on the CPU too); on a GPU machine pass TORCH_SPEC='torch>=2.4' (or preinstall a CUDA build).
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast test-kafka test-tansu kafka kafka-libs lint typecheck bench replay-nab wheel clean

venv: $(STAMP)

# quiet: setuptools' editable install always adds an information-only warning ("Editable installation":
# folders named like the package take precedence), which is what a checkout wants, so it is filtered
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seqstream demo --seconds 45

# the whole suite with its integration tests on Apache Kafka (the reference broker), then the
# smoke subset on the embedded Tansu broker of `make demo`
test: test-kafka test-tansu

test-kafka: $(STAMP) kafka-libs
	SEQSTREAM_TEST_BROKER=kafka $(PY) -m pytest -q

test-tansu: $(STAMP)
	SEQSTREAM_TEST_BROKER=tansu $(PY) -m pytest -q -m "integration and smoke"

# Apache Kafka's jars, pinned in deploy/kafka/pom.xml, resolved once by Maven into ~/.cache/seqstream
kafka-libs: $(STAMP)
	$(PY) -c "from stream.tools.kafka_broker import kafka_classpath; print(kafka_classpath())"

# a local Apache Kafka on localhost:9092 with the worker's topics, in the foreground (Ctrl-C stops it)
kafka: kafka-libs
	$(VENV)/bin/seqstream broker --kind kafka --port 9092 --create-topics

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not slow"

# the installable wheel (checkpoints and the explorer page inside) into dist/; tests/integration/test_wheel.py
# installs one into a fresh venv outside the repository and runs the demo from it
wheel: $(STAMP)
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .

lint: $(STAMP)
	$(VENV)/bin/ruff check models stream tests bench deploy
	$(VENV)/bin/ruff format --check models stream tests bench deploy
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/step_bench.py

# NAB scores the detection signal (the score where an alert opened); evaluate nab -o writes exactly that
replay-nab: $(STAMP)
	$(VENV)/bin/seqstream evaluate nab ../shared/data/nab-dev/data ../shared/data/nab-dev/combined_windows.json -o nab-out
	$(PY) ../shared/tools/nab_score.py --data ../shared/data/nab-dev/data --labels ../shared/data/nab-dev/combined_windows.json --results nab-out

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
