# Everything is driven by the topology (var.functions and friends, rendered from topology.toml):
# each resource kind below is one block with for_each, never a copy per function.

data "google_project" "this" {}

locals {
  buckets = {
    uploads = var.uploads_bucket
    work    = var.work_bucket
    results = var.results_bucket
  }
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  stage_topics = toset([for f in var.functions : f.topic if !f.http])
  # Pub/Sub pushes to these; the HTTP functions (the web app's api) are called directly.
  pushed         = { for name, f in var.functions : name => f if !f.http }
  http_functions = { for name, f in var.functions : name => f if f.http }
  mounted        = toset(compact(split(",", var.mounted_secrets)))
  secrets        = toset(flatten([for f in var.functions : f.secrets]))
  image_registry = "${var.region}-docker.pkg.dev/${var.project}/${var.repository}"

  # One (function, bucket, role) triple per grant: writers may overwrite their deterministic
  # outputs (objectUser), readers only read (objectViewer).
  bucket_grants = merge(
    { for pair in setproduct(keys(var.functions), keys(local.buckets)) :
      "${pair[0]}/${pair[1]}/viewer" => { function = pair[0], bucket = pair[1], role = "roles/storage.objectViewer" }
      if contains(var.functions[pair[0]].reads, pair[1])
    },
    { for pair in setproduct(keys(var.functions), keys(local.buckets)) :
      "${pair[0]}/${pair[1]}/user" => { function = pair[0], bucket = pair[1], role = "roles/storage.objectUser" }
      if contains(var.functions[pair[0]].writes, pair[1])
    },
  )
  publisher_grants = merge([
    for name, f in var.functions : { for topic in f.publishes : "${name}/${topic}" => { function = name, topic = topic } }
  ]...)
  secret_grants = merge([
    for name, f in var.functions : { for secret in f.secrets : "${name}/${secret}" => { function = name, secret = secret } }
  ]...)
}

resource "google_storage_bucket" "pipeline" {
  for_each = local.buckets

  name                        = each.value
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Intermediate artefacts live under work/{jobId}/ and are worthless after the job.
  dynamic "lifecycle_rule" {
    for_each = each.key == "work" ? [1] : []
    content {
      condition {
        age            = var.work_retention_days
        matches_prefix = ["work/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  # The web app PUTs photos straight to the uploads bucket through the api's signed URLs.
  dynamic "cors" {
    for_each = each.key == "uploads" ? [1] : []
    content {
      origin = [var.web_origin]
      method = ["PUT"]
      response_header = [
        "Content-Type", "x-goog-meta-job-id", "x-goog-content-length-range",
        # A studio request's metadata (common/jobs.py STUDIO_METADATA).
        "x-goog-meta-subject", "x-goog-meta-style", "x-goog-meta-prompt", "x-goog-meta-aspect",
        "x-goog-meta-context", "x-goog-meta-language",
      ]
      max_age_seconds = 3600
    }
  }

  # The Studio view fetches its shots (signed GET URLs) to hand them to the Web Share API.
  dynamic "cors" {
    for_each = each.key == "results" ? [1] : []
    content {
      origin          = [var.web_origin]
      method          = ["GET"]
      response_header = ["Content-Type"]
      max_age_seconds = 3600
    }
  }

  # Try-on results (and their manifests) expire with their job documents.
  dynamic "lifecycle_rule" {
    for_each = each.key == "results" ? [1] : []
    content {
      condition {
        age            = var.tryon_ttl_days
        matches_prefix = ["tryon/"]
      }
      action {
        type = "Delete"
      }
    }
  }
}

resource "google_firestore_database" "jobs" {
  name                    = "(default)"
  location_id             = var.firestore_location != "" ? var.firestore_location : var.region
  type                    = "FIRESTORE_NATIVE"
  deletion_policy         = "ABANDON"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
}

# Job documents carry expiresAt; Firestore deletes them once it has passed.
# The watchdog's query: unfinished jobs by their last change.
resource "google_firestore_index" "stale_jobs" {
  project    = var.project
  database   = google_firestore_database.jobs.name
  collection = "jobs"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }
  fields {
    field_path = "updatedAt"
    order      = "ASCENDING"
  }
}

# The web app's list of a user's recent jobs: `where uid == ... orderBy createdAt desc`.
resource "google_firestore_index" "user_jobs" {
  project    = var.project
  database   = google_firestore_database.jobs.name
  collection = "jobs"

  fields {
    field_path = "uid"
    order      = "ASCENDING"
  }
  fields {
    field_path = "createdAt"
    order      = "DESCENDING"
  }
}

resource "google_firestore_field" "jobs_ttl" {
  database   = google_firestore_database.jobs.name
  collection = "jobs"
  field      = "expiresAt"

  ttl_config {}
}

# One secret per name the topology lists (GEMINI_API_KEY -> closet-gemini-api-key). Its value is
# added out of band (`gcloud secrets versions add`), then the name goes into var.mounted_secrets.
resource "google_secret_manager_secret" "env" {
  for_each = local.secrets

  secret_id = "closet-${lower(replace(each.key, "_", "-"))}"
  replication {
    auto {}
  }
}
