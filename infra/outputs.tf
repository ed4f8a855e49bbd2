output "function_urls" {
  description = "Cloud Run URL of each function (internal ingress: not reachable from outside)."
  value       = { for name, service in google_cloud_run_v2_service.function : name => service.uri }
}

output "buckets" {
  value = { for role, bucket in google_storage_bucket.pipeline : role => bucket.name }
}

output "images" {
  value = { for name, f in var.functions : name => "${local.image_registry}/${f.service}:${var.image_tag}" }
}

output "api_url" {
  description = "The web app's api (POST /uploads, GET /jobs/{jobId}/images)."
  value       = { for name, f in local.http_functions : name => google_cloud_run_v2_service.function[name].uri }
}
