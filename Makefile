# Every target sets itself up: a fresh clone needs only python3 (3.10+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit emulator bench stateful-long shared-app-long rotation-long clean

# The version lives in the packages' __init__.py (pyproject.toml reads it): a new one is
# installed again, so that the editable installs' metadata tells it.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml client/pyproject.toml \
		shared/__init__.py client/vend_client/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e . -e ./client
	touch $@

run: $(STAMP)
	$(BIN)/vend local

emulator: $(STAMP)
	$(BIN)/vend emulator --seed examples/seed.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/vend_latency.py
	$(BIN)/python benchmarks/emulator_nonces.py
	$(BIN)/python benchmarks/client_cache.py
	$(BIN)/python benchmarks/agent.py
	$(BIN)/python benchmarks/rotation.py

# The stateful fault test, longer than in `make test` (STEPS steps in each of EXAMPLES runs,
# a random seed unless SEED is given).
EXAMPLES ?= 20
STEPS ?= 200
stateful-long: $(STAMP)
	VEND_STATEFUL_EXAMPLES=$(EXAMPLES) VEND_STATEFUL_STEPS=$(STEPS) $(if $(SEED),VEND_STATEFUL_SEED=$(SEED)) \
		$(BIN)/pytest -p no:cacheprovider tests/test_stateful_faults.py

# The two principals' machine on one application, longer than in `make test` (same EXAMPLES,
# STEPS, SEED).
shared-app-long: $(STAMP)
	VEND_SHARED_EXAMPLES=$(EXAMPLES) VEND_SHARED_STEPS=$(STEPS) $(if $(SEED),VEND_SHARED_SEED=$(SEED)) \
		$(BIN)/pytest -p no:cacheprovider tests/test_stateful_shared_app.py

# The rotation state machine, longer than in `make test` (same EXAMPLES, STEPS, SEED).
rotation-long: $(STAMP)
	VEND_ROTATION_STATEFUL_EXAMPLES=$(EXAMPLES) VEND_ROTATION_STATEFUL_STEPS=$(STEPS) \
		$(if $(SEED),VEND_ROTATION_STATEFUL_SEED=$(SEED)) \
		$(BIN)/pytest -p no:cacheprovider tests/test_stateful_rotation.py

# Mutation testing of the security core with mutmut, one group of modules at a time, each in
# build/mutate/GROUP with the tests written about it (infra/mutation/groups.py; infra/mutation/
# stage.py lays the tree out), then the score per module. MUTATE_GROUPS="policy api" runs only
# those; MUTANTS="shared.approval.*" (with the group that holds them) only the mutants it names.
# Results are kept: only functions changed since are tried again. Long: it runs at the lowest
# priority.
.PHONY: mutate
MUTATE_GROUPS ?=
MUTANTS ?=
MUTATE_CHILDREN ?= 2
mutate: $(STAMP)
	@for group in $(or $(MUTATE_GROUPS),$(shell $(BIN)/python -m infra.mutation.groups)); do \
		echo "== mutate $$group"; \
		$(BIN)/python -m infra.mutation.stage $$group || exit 1; \
		(cd build/mutate/$$group && nice -n 19 ../../../$(BIN)/mutmut run \
			--max-children $(MUTATE_CHILDREN) $(MUTANTS)) || exit 1; \
	done
	$(BIN)/python -m infra.mutation.score

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build/mutate

# The code zip for FC (dist/vend-fc.zip), built without Docker; see infra/package.py.
# POLICY=file.json ships it as policy.json at the zip root (none by default); ROTATION=file.json
# ships VEND_ROTATION's list as rotation.json (VEND_ROTATION=/code/rotation.json);
# PACKAGE_ARGS="--python-version 3.10 --platform manylinux2014_x86_64" chooses the target.
.PHONY: package
package: $(STAMP)
	$(BIN)/python -m infra.package $(if $(POLICY),--policy $(POLICY)) \
		$(if $(ROTATION),--rotation $(ROTATION)) $(PACKAGE_ARGS)
