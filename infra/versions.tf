terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.20"
    }
  }

  # The state bucket is created once by the bootstrap (see the README) and named at init:
  # terraform -chdir=infra init -backend-config=bucket=PROJECT-closet-tfstate
  backend "gcs" {
    prefix = "closet"
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
