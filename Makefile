# The two commands of the README. Both set up what they need first (scripts/setup.sh is idempotent).
PY := .venv/bin/python
OUT ?= out
ZONES ?= 8,16,4,4  # the 8x8 ToF footprint at 48x64 (scripts/make_depth_calib.py prints it)

.PHONY: setup demo test lint format

setup:
	@bash scripts/setup.sh

demo: setup
	@mkdir -p $(OUT)
	$(PY) scripts/make_depth_calib.py $(OUT)/depth-calib.npz
	$(PY) -m mcutrain plan depth --strategy full --loss berhu --masked --zones $(ZONES) --out $(OUT)/depth-full.json
	$(PY) -m mcutrain plan depth --budget 256KB --calib $(OUT)/depth-calib.npz --loss berhu --masked \
		--zones $(ZONES) --out $(OUT)/depth-auto.json --plot $(OUT)/depth-memory.png
	$(PY) scripts/compare_plans.py $(OUT)/depth-full.json $(OUT)/depth-auto.json

test: setup
	$(PY) -m pytest -q

lint:
	.venv/bin/ruff check mcutrain tests tools benchmarks scripts
	clang-format --dry-run --Werror firmware/runtime/src/*.c firmware/runtime/include/*.h firmware/link/*.[ch] tests/link/*.[ch]

format:
	.venv/bin/ruff format mcutrain tests tools benchmarks scripts
	clang-format -i firmware/runtime/src/*.c firmware/runtime/include/*.h firmware/link/*.[ch] tests/link/*.[ch]
