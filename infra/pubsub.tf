resource "google_pubsub_topic" "stage" {
  for_each = local.stage_topics

  name = each.value
}

# One push subscription per function, authenticated with the invoker's OIDC token.
resource "google_pubsub_subscription" "push" {
  for_each = local.pushed

  name                 = each.value.subscription
  topic                = google_pubsub_topic.stage[each.value.topic].id
  ack_deadline_seconds = each.value.ack_deadline_s

  push_config {
    push_endpoint = google_cloud_run_v2_service.function[each.key].uri
    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = google_cloud_run_v2_service.function[each.key].uri
    }
  }

  retry_policy {
    minimum_backoff = "${var.minimum_backoff_s}s"
    maximum_backoff = "${var.maximum_backoff_s}s"
  }

  # Every subscription but the dead letter's own gives up after max_delivery_attempts.
  dynamic "dead_letter_policy" {
    for_each = each.value.dead_lettered ? [1] : []
    content {
      dead_letter_topic     = google_pubsub_topic.stage[var.dead_letter_topic].id
      max_delivery_attempts = var.max_delivery_attempts
    }
  }

  expiration_policy {
    ttl = ""
  }
}

# Uploads under the prefix start jobs: the bucket notifies the uploads topic.
resource "google_storage_notification" "uploads" {
  bucket             = google_storage_bucket.pipeline["uploads"].name
  topic              = google_pubsub_topic.stage[var.uploads_topic].id
  payload_format     = "JSON_API_V1"
  event_types        = ["OBJECT_FINALIZE"]
  object_name_prefix = var.uploads_prefix

  depends_on = [google_pubsub_topic_iam_member.storage_notifies_uploads]
}
