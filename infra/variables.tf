# Set per deployment (cloudbuild.yaml passes them with -var).
variable "project" {
  type        = string
  description = "Google Cloud project id."
}

variable "region" {
  type        = string
  description = "Region of Cloud Run, Artifact Registry, the buckets and Cloud Scheduler."
  default     = "us-central1"
}

variable "repository" {
  type        = string
  description = "Artifact Registry Docker repository holding one image per function."
  default     = "closet"
}

variable "image_tag" {
  type        = string
  description = "Tag of every function's image (Cloud Build uses the commit SHA)."
}

variable "uploads_bucket" {
  type = string
}

variable "work_bucket" {
  type = string
}

variable "results_bucket" {
  type = string
}

variable "firestore_location" {
  type        = string
  description = "Firestore location; empty means the region."
  default     = ""
}

variable "background_backend" {
  type        = string
  description = "CLOSET_BACKGROUND_BACKEND of every function (u2net needs its weights baked in)."
  default     = "classic"
}

variable "mounted_secrets" {
  type        = string
  description = "Comma list of topology secrets that have a version and are mounted, e.g. GEMINI_API_KEY."
  default     = ""
}

variable "warmup_schedule" {
  type        = string
  description = "Cron schedule of the warm-up CloudEvent sent to every function."
  default     = "*/5 * * * *"
}

variable "tryon_ttl_days" {
  type        = number
  description = "Try-on jobs and their results under tryon/ in the results bucket expire after this many days (CLOSET_TRYON_TTL_DAYS)."
  default     = 7
}

variable "work_retention_days" {
  type        = number
  description = "Intermediate artefacts under work/ are deleted after this many days."
  default     = 1
}

variable "web_origin" {
  type        = string
  description = "Origin of the web app (https://host), allowed by the api's CORS and the uploads bucket's (CLOSET_WEB_ORIGIN)."
}

variable "max_instances" {
  type        = number
  description = "Upper bound of instances per function (a cost guard)."
  default     = 10
}

# Rendered from infra/topology.toml into topology.auto.tfvars.json (`make render`); never by hand.
variable "functions" {
  type = map(object({
    service           = string
    topic             = string
    subscription      = string
    ack_deadline_s    = number
    cpu               = number
    memory            = string
    gpu               = number
    concurrency       = number
    min_instances     = number
    startup_cpu_boost = bool
    group             = string
    reads             = list(string)
    writes            = list(string)
    publishes         = list(string)
    schedule          = string
    secrets           = list(string)
    dead_lettered     = bool
    http              = bool
  }))
}

variable "dead_letter_topic" {
  type = string
}

variable "max_delivery_attempts" {
  type = number
}

variable "minimum_backoff_s" {
  type = number
}

variable "maximum_backoff_s" {
  type = number
}

variable "uploads_topic" {
  type = string
}

variable "uploads_prefix" {
  type = string
}
