# One Cloud Run service per function. The pushed ones are reachable only from inside Google Cloud
# (Pub/Sub push and Cloud Scheduler count as internal) and only with the invoker's token; the
# web app's api is reachable from browsers and checks their Firebase ID tokens itself.
resource "google_cloud_run_v2_service" "function" {
  for_each = var.functions

  name                = each.value.service
  location            = var.region
  ingress             = each.value.http ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false

  template {
    service_account                  = google_service_account.runtime[each.key].email
    timeout                          = "${each.value.ack_deadline_s}s" # a request lives as long as its message's lease
    max_instance_request_concurrency = each.value.concurrency

    scaling {
      min_instance_count = each.value.min_instances
      max_instance_count = var.max_instances
    }

    dynamic "node_selector" {
      for_each = each.value.gpu > 0 ? [1] : []
      content {
        accelerator = "nvidia-l4"
      }
    }

    containers {
      image = "${local.image_registry}/${each.value.service}:${var.image_tag}"

      resources {
        limits = merge(
          { cpu = tostring(each.value.cpu), memory = each.value.memory },
          each.value.gpu > 0 ? { "nvidia.com/gpu" = tostring(each.value.gpu) } : {},
        )
        cpu_idle          = each.value.gpu == 0
        startup_cpu_boost = each.value.startup_cpu_boost
      }

      # functions-framework's gunicorn: one worker (one copy of the model), a thread per request.
      env {
        name  = "WORKERS"
        value = "1"
      }
      env {
        name  = "THREADS"
        value = tostring(each.value.concurrency)
      }
      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project
      }
      env {
        name  = "CLOSET_UPLOADS_BUCKET"
        value = var.uploads_bucket
      }
      env {
        name  = "CLOSET_WORK_BUCKET"
        value = var.work_bucket
      }
      env {
        name  = "CLOSET_RESULTS_BUCKET"
        value = var.results_bucket
      }
      env {
        name  = "CLOSET_BACKGROUND_BACKEND"
        value = var.background_backend
      }
      env {
        name  = "CLOSET_WEB_ORIGIN"
        value = var.web_origin
      }
      env {
        name  = "CLOSET_TRYON_TTL_DAYS"
        value = tostring(var.tryon_ttl_days)
      }

      dynamic "env" {
        for_each = [for s in each.value.secrets : s if contains(local.mounted, s)]
        content {
          name = env.value
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.env[env.value].secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.runtime]
}
