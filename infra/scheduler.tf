# Every few minutes each function gets the closet.warmup CloudEvent (binary mode), so a model
# stage keeps its instance and its model warm.
resource "google_cloud_scheduler_job" "warmup" {
  for_each = local.pushed

  name      = "closet-warmup-${each.value.service}"
  region    = var.region
  schedule  = var.warmup_schedule
  time_zone = "Etc/UTC"

  retry_config {
    retry_count = 0
  }

  http_target {
    uri         = google_cloud_run_v2_service.function[each.key].uri
    http_method = "POST"
    headers = {
      "Content-Type"   = "application/json"
      "ce-specversion" = "1.0"
      "ce-type"        = "closet.warmup"
      "ce-source"      = "//cloudscheduler.googleapis.com/closet-warmup-${each.value.service}"
      "ce-id"          = "warmup-${each.value.service}"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = google_cloud_run_v2_service.function[each.key].uri
    }
  }
}

# Functions with a schedule in the topology (the watchdog's sweep) get a message on their topic.
resource "google_cloud_scheduler_job" "sweep" {
  for_each = { for name, f in var.functions : name => f if f.schedule != "" }

  name      = "closet-sweep-${each.value.service}"
  region    = var.region
  schedule  = each.value.schedule
  time_zone = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.stage[each.value.topic].id
    data       = base64encode("{}")
  }
}
