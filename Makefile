.PHONY: demo test lint venv bench

demo:  ## bring up examples/shop with Conveyor and print its URLs
	bash scripts/demo.sh

test:  ## install what the tests need, start the real servers, run every check and test
	bash scripts/test.sh

venv:
	bash scripts/venv.sh

lint: venv
	.venv/bin/ruff check src tests bench examples
	.venv/bin/mypy
	.venv/bin/lint-imports

bench: venv
	.venv/bin/python bench/proxy_overhead.py
	.venv/bin/python bench/rollout_under_load.py
	.venv/bin/python bench/commit_to_live.py
