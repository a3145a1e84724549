# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and installs
# what it needs. torch is pinned to the CPU build that lies on this machine's disk; it is
# installed first so no other package can pull a different (multi-GB) build.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH  := $(VENV)/.bench-installed
PYTEST_FLAGS ?=

.PHONY: install test test-lowest demo bench record lint typecheck serve clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[all]" --group dev
	touch $(STAMP)

install: $(STAMP)

# The whole suite: unit, cassette replays (never recorded here) and real-server integration tests.
test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_FLAGS)

# The unit tests against the lowest versions pyproject.toml allows (every ">=" floor pinned), so
# the declared floors are real. No torch, no server: the unit tests need neither.
LOWEST := .venv-lowest
LOWEST_EXTRAS := langchain llama-index progress fast
$(LOWEST)/.installed: pyproject.toml .ci/lowest.py
	test -x $(LOWEST)/bin/python || python3 -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q --upgrade "pip>=25.1"
	python3 .ci/lowest.py $(LOWEST_EXTRAS) > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install -q -c $(LOWEST)/constraints.txt -e ".[langchain,llama-index,progress,fast]" \
		"pytest>=8.3" "pytest-asyncio>=0.24" "pytest-recording>=0.13" "vcrpy>=6" "hypothesis>=6.100" "langchain-tests==0.3.3"
	touch $(LOWEST)/.installed

test-lowest: $(LOWEST)/.installed
	$(LOWEST)/bin/python -m pytest tests/unit $(PYTEST_FLAGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The main job: a real local endpoint, ingestion through LangChain and LlamaIndex, two queries.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) examples/demo.py

serve: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/hf-infer serve

# Re-record the cassettes against the real local model server (needs no network beyond 127.0.0.1).
record: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest tests/cassettes --record-mode=rewrite -p no:randomly

$(BENCH): $(STAMP)
	$(PY) -m pip install -q -e ".[all]" --group dev --group bench
	touch $(BENCH)

bench: $(BENCH)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache
