# Who may do what: one runtime identity per function with only its stage's roles, one invoker
# identity for Pub/Sub push and Cloud Scheduler. No primitive roles; allUsers only on the web
# app's api (see below).

resource "google_service_account" "runtime" {
  for_each = var.functions

  account_id   = substr("closet-${each.value.service}", 0, 30)
  display_name = "closet ${each.key} (Cloud Run runtime)"
}

resource "google_service_account" "invoker" {
  account_id   = "closet-invoker"
  display_name = "closet push and warm-up invoker"
}

# Every stage reads and writes its job document.
resource "google_project_iam_member" "runtime_firestore" {
  for_each = var.functions

  project = var.project
  role    = "roles/datastore.user"
  member  = google_service_account.runtime[each.key].member
}

resource "google_storage_bucket_iam_member" "runtime" {
  for_each = local.bucket_grants

  bucket = google_storage_bucket.pipeline[each.value.bucket].name
  role   = each.value.role
  member = google_service_account.runtime[each.value.function].member
}

# A stage publishes only to the topics of the stages it hands work to.
resource "google_pubsub_topic_iam_member" "runtime_publishes" {
  for_each = local.publisher_grants

  topic  = google_pubsub_topic.stage[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = google_service_account.runtime[each.value.function].member
}

resource "google_secret_manager_secret_iam_member" "runtime" {
  for_each = local.secret_grants

  secret_id = google_secret_manager_secret.env[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime[each.value.function].member
}

# The invoker may call each pushed function; nobody else may.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.pushed

  name     = google_cloud_run_v2_service.function[each.key].name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.invoker.member
}

# Pub/Sub mints the invoker's OIDC tokens for push.
resource "google_service_account_iam_member" "pubsub_mints_invoker_tokens" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Dead-lettering: the Pub/Sub service agent publishes to the dead-letter topic and acknowledges
# the message on the subscription it gave up on.
resource "google_pubsub_topic_iam_member" "pubsub_dead_letters" {
  topic  = google_pubsub_topic.stage[var.dead_letter_topic].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_forwards" {
  for_each = { for name, f in var.functions : name => f if f.dead_lettered }

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Cloud Storage's service agent publishes the uploads bucket's notifications.
data "google_storage_project_service_account" "gcs" {}

resource "google_pubsub_topic_iam_member" "storage_notifies_uploads" {
  topic  = google_pubsub_topic.stage[var.uploads_topic].name
  role   = "roles/pubsub.publisher"
  member = data.google_storage_project_service_account.gcs.member
}

# Browsers call the api without a Google identity: Cloud Run lets every request in, and the api
# refuses any without a valid Firebase ID token (401) before it does anything.
resource "google_cloud_run_v2_service_iam_member" "public_api" {
  for_each = local.http_functions

  name     = google_cloud_run_v2_service.function[each.key].name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The api signs URLs as itself through IAM signBlob (Cloud Run credentials hold no key).
resource "google_service_account_iam_member" "http_signs_urls" {
  for_each = local.http_functions

  service_account_id = google_service_account.runtime[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.runtime[each.key].member
}
