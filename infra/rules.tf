# Client access to Firestore: infra/firestore.rules, the very file `closet dev` and the tests run
# the Firestore emulator with. The functions' service accounts are not subject to rules.
resource "google_firebaserules_ruleset" "firestore" {
  project = var.project

  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/firestore.rules")
    }
  }

  depends_on = [google_firestore_database.jobs]

  lifecycle {
    create_before_destroy = true
  }
}

# The default database's release points at the newest ruleset.
resource "google_firebaserules_release" "firestore" {
  project      = var.project
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project}/rulesets/${google_firebaserules_ruleset.firestore.name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}
