# Every target creates what it needs: a fresh clone runs `make demo` or `make test` directly.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# firebase-tools (the Auth emulator) from the root package-lock.json.
NODE_STAMP := node_modules/.installed
OUT ?= out/demo
SAMPLE := tests/data/sample-shirt.jpg

.PHONY: install demo dev test lint format typecheck unit fuzz chaos bench clean render images bootstrap deploy apply web browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[background,segmentation,generative,tryon,studio,api,cloud,models,dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm is missing: install Node.js 18+ with npm (apt-get install nodejs npm); firebase-tools runs the Auth emulator"; exit 2; }
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

# --- the web app (README: "Web app") ---
WEB_STAMP := web/node_modules/.installed
WEB_SOURCES := web/index.html web/vite.config.js $(wildcard web/src/*)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

web/dist/index.html: $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run build

# The page, built into web/dist/ (serve it with a config.json next to index.html).
web: web/dist/index.html

# Debian's Chromium for the browser test (playwright-core drives it; it downloads no browser).
browser:
	@command -v chromium >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y chromium; }

demo: $(STAMP)
	$(BIN)/closet run $(SAMPLE) --out $(OUT)

# Emulators and every function on this machine; Ctrl-C stops them all.
dev: $(STAMP) $(NODE_STAMP) web
	$(BIN)/closet dev --state .closet-dev.json

# Every measure against its target (about 15 minutes); writes bench/results/.
bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/closet bench --json bench/results/bench.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	terraform fmt -check -recursive infra

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(NODE_STAMP) web browser
	$(BIN)/pytest tests

test: lint typecheck unit

# Every fault scenario at full size on the emulator topology; figures go to docs/chaos.md.
chaos: $(STAMP) $(NODE_STAMP)
	CLOSET_CHAOS=full $(BIN)/pytest tests/integration/test_chaos.py -v

# The ingest fuzzing of `make test`, with many more examples (about 10 minutes).
fuzz: $(STAMP)
	CLOSET_FUZZ_EXAMPLES=$${CLOSET_FUZZ_EXAMPLES:-20000} $(BIN)/pytest tests/unit/test_fuzz_ingest.py -q

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	terraform fmt -recursive infra

# --- Google Cloud (README: "Deploy to Google Cloud") ---
PROJECT ?=
REGION ?= us-central1
CONTAINER ?= $(shell command -v docker || command -v podman)

# cloudbuild.yaml and the Terraform variables, from infra/topology.toml.
render: $(STAMP)
	$(BIN)/python -m common.deploy cloudbuild cloudbuild.yaml
	$(BIN)/python -m common.deploy tfvars infra/topology.auto.tfvars.json

# One image per function with a local engine (needs a registry that serves python:3.11-slim).
images: $(STAMP)
	@test -n "$(CONTAINER)" || { echo "make images needs docker or podman"; exit 2; }
	$(BIN)/python -m common.deploy builds - --engine $(CONTAINER) | sh -ex

bootstrap:
	@test -n "$(PROJECT)" || { echo "usage: make bootstrap PROJECT=my-project REGION=us-central1"; exit 2; }
	infra/bootstrap.sh $(PROJECT) $(REGION)

# Lint and unit tests, every image, terraform apply: all in Cloud Build, from this checkout.
deploy:
	@test -n "$(PROJECT)" || { echo "usage: make deploy PROJECT=my-project REGION=us-central1"; exit 2; }
	gcloud builds submit --project $(PROJECT) --region $(REGION) --config cloudbuild.yaml \
	  --service-account projects/$(PROJECT)/serviceAccounts/closet-deployer@$(PROJECT).iam.gserviceaccount.com \
	  --substitutions _REGION=$(REGION),_TAG=$$(git describe --always --dirty --abbrev=40)$(if $(SUBSTITUTIONS),$(comma)$(SUBSTITUTIONS)) .

# Terraform only, from this machine, with images already pushed (a rollback: TAG=an older commit).
TAG ?=
apply: render
	@test -n "$(PROJECT)" -a -n "$(TAG)" || { echo "usage: make apply PROJECT=p REGION=r TAG=commit"; exit 2; }
	terraform -chdir=infra init -input=false -backend-config=bucket=$(PROJECT)-closet-tfstate
	terraform -chdir=infra apply -input=false -var=project=$(PROJECT) -var=region=$(REGION) \
	  -var=image_tag=$(TAG) -var=uploads_bucket=$(PROJECT)-closet-uploads \
	  -var=work_bucket=$(PROJECT)-closet-work -var=results_bucket=$(PROJECT)-closet-results \
	  -var=web_origin=$(or $(WEB_ORIGIN),https://$(PROJECT).web.app) $(TF_ARGS)

comma := ,

clean:
	rm -rf $(VENV) node_modules out .mypy_cache .pytest_cache .ruff_cache web/node_modules web/dist
