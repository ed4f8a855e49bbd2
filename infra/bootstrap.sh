#!/usr/bin/env bash
# One-time setup of an empty project, before the first `make deploy` (safe to run again):
# the APIs, the Terraform state bucket, the Artifact Registry repository, and the deployer
# service account Cloud Build runs as, with the roles `terraform apply` needs.
#   infra/bootstrap.sh PROJECT REGION
set -euo pipefail
PROJECT=${1:?usage: infra/bootstrap.sh PROJECT REGION}
REGION=${2:?usage: infra/bootstrap.sh PROJECT REGION}
REPOSITORY=${REPOSITORY:-closet}
STATE_BUCKET=${STATE_BUCKET:-${PROJECT}-closet-tfstate}
DEPLOYER=closet-deployer@${PROJECT}.iam.gserviceaccount.com

gcloud services enable --project "$PROJECT" \
  run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com \
  pubsub.googleapis.com firestore.googleapis.com storage.googleapis.com \
  cloudscheduler.googleapis.com secretmanager.googleapis.com iam.googleapis.com \
  cloudresourcemanager.googleapis.com logging.googleapis.com \
  firebaserules.googleapis.com identitytoolkit.googleapis.com iamcredentials.googleapis.com

gcloud storage buckets describe "gs://$STATE_BUCKET" --project "$PROJECT" > /dev/null 2>&1 ||
  gcloud storage buckets create "gs://$STATE_BUCKET" --project "$PROJECT" --location "$REGION" \
    --uniform-bucket-level-access --public-access-prevention
gcloud storage buckets update "gs://$STATE_BUCKET" --versioning

gcloud artifacts repositories describe "$REPOSITORY" --project "$PROJECT" --location "$REGION" \
  > /dev/null 2>&1 ||
  gcloud artifacts repositories create "$REPOSITORY" --project "$PROJECT" --location "$REGION" \
    --repository-format docker --description "closet-pipeline function images"

gcloud iam service-accounts describe "$DEPLOYER" --project "$PROJECT" > /dev/null 2>&1 ||
  gcloud iam service-accounts create closet-deployer --project "$PROJECT" \
    --display-name "closet deployer (Cloud Build)"

# What `terraform apply` of infra/ creates, and nothing broader (no owner or editor).
for role in roles/run.admin roles/iam.serviceAccountAdmin roles/iam.serviceAccountUser \
  roles/pubsub.admin roles/storage.admin roles/datastore.owner roles/cloudscheduler.admin \
  roles/secretmanager.admin roles/resourcemanager.projectIamAdmin \
  roles/artifactregistry.writer roles/logging.logWriter; do
  gcloud projects add-iam-policy-binding "$PROJECT" --member "serviceAccount:$DEPLOYER" \
    --role "$role" --condition None --quiet > /dev/null
done
echo "bootstrapped $PROJECT: state gs://$STATE_BUCKET, images $REGION-docker.pkg.dev/$PROJECT/$REPOSITORY"
