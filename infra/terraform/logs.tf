# -- Log Service: the index of the audit records, and a dashboard over them ----------------------
#
# The functions print one JSON audit record per request to stdout (shared/audit.py; README,
# "Audit"), and one JSON WARNING line per request that an upstream failed. FC ships each line to
# the logstore of the function's logConfig, whole, in the field `message`; the index below reads
# that field as JSON, so the records' own fields are searched and analysed as `message.outcome`,
# `"message.duration_ms"` and so on, as they come, with no processing in between.
#
# Which logstore: s.yaml and s.custom.yaml say `logConfig: auto`, for which the fc3 component
# creates project serverless-{region}-{uuid of the account} and logstore default-logs
# (infra/ASSUMPTIONS.md, L1). The project exists only once `s deploy` ran, after the roles above,
# so this part is off until var.log_project names it (the deploy prints it; the FC console shows
# it under the function's logging). If that logstore already has an index (the component may
# create one), import it first, then apply, which replaces it with this one (FC's own fields
# and a full-text index are kept in it):
#
#   terraform import 'alicloud_log_store_index.audit[0]' <project>:default-logs
#   terraform apply ... -var log_project=<project>
#
# The audit fields and their types (tests/test_audit_fields.py checks that each one the index or
# a query names is in the records the service writes): text for ids, names and codes; double for
# milliseconds; long for the upstream's HTTP status and the attempts. A field that does not apply
# to a request is absent from its record (never null), so a query's filter, not a null check,
# picks the records it is about.

locals {
  log_enabled = var.log_project != ""

  # The delimiters of SLS's default index, as the provider's examples write them.
  sls_token = ", '\";=()[]{}?@&<>/:\n\t\r"

  # The audit record's fields that are indexed, and their types.
  audit_fields = {
    log                 = "text" # "audit"
    request_id          = "text"
    trace_id            = "text" # of the request's W3C traceparent, when it sent a valid one
    principal           = "text"
    action              = "text"
    resource            = "text"
    decision            = "text"
    statement           = "text" # the Sid (or Statement[i]) of the Allow or Deny that decided
    outcome             = "text"
    upstream_request_id = "text"
    upstream            = "text"
    upstream_code       = "text"
    upstream_status     = "long"
    attempts            = "long"
    duration_ms         = "double"
    auth_ms             = "double"
    sts_ms              = "double"
    eiam_ms             = "double"
    kms_ms              = "double"
    seal_ms             = "double"
  }

  # The dashboard's queries, in SLS syntax: a search, then the analysis. Every audit record says
  # "log":"audit" (the WARNING lines say "upstream"; FC's own lines say neither).
  audit_queries = {
    requests_by_outcome  = "message.log: audit | SELECT \"message.outcome\" AS outcome, count(*) AS requests GROUP BY outcome ORDER BY requests DESC"
    latency              = "message.log: audit | SELECT date_trunc('minute', __time__) AS minute, approx_percentile(\"message.duration_ms\", 0.5) AS p50_ms, approx_percentile(\"message.duration_ms\", 0.99) AS p99_ms, count(*) AS requests GROUP BY minute ORDER BY minute LIMIT 1440"
    stage_latency        = "message.log: audit and message.outcome: ok | SELECT approx_percentile(\"message.auth_ms\", 0.99) AS auth_p99_ms, approx_percentile(\"message.sts_ms\", 0.99) AS sts_p99_ms, approx_percentile(\"message.eiam_ms\", 0.99) AS eiam_p99_ms, approx_percentile(\"message.kms_ms\", 0.99) AS kms_p99_ms, approx_percentile(\"message.seal_ms\", 0.99) AS seal_p99_ms"
    denials_by_principal = "message.log: audit and message.outcome: AccessDenied | SELECT \"message.principal\" AS principal, \"message.decision\" AS decision, count(*) AS denials GROUP BY principal, decision ORDER BY denials DESC LIMIT 50"
    upstream_failures    = "message.log: audit and (message.outcome: UpstreamError or message.outcome: UpstreamTimeout or message.outcome: Throttled) | SELECT \"message.upstream\" AS upstream, \"message.upstream_code\" AS upstream_code, \"message.upstream_status\" AS upstream_status, count(*) AS failures, max(\"message.attempts\") AS max_attempts GROUP BY upstream, upstream_code, upstream_status ORDER BY failures DESC LIMIT 50"
  }

  # The dashboard's charts, one per query (the console's chart JSON: search, then display).
  audit_charts = [
    {
      title  = "Requests by outcome"
      type   = "pie"
      search = { logstore = var.log_logstore, query = local.audit_queries.requests_by_outcome, start = "-86400s", end = "now" }
      display = {
        xAxis = ["outcome"], yAxis = ["requests"]
        xPos  = 0, yPos = 0, width = 6, height = 8, displayName = "Requests by outcome (24 h)"
      }
    },
    {
      title  = "Latency p50 / p99"
      type   = "line"
      search = { logstore = var.log_logstore, query = local.audit_queries.latency, start = "-86400s", end = "now" }
      display = {
        xAxis = ["minute"], yAxis = ["p50_ms", "p99_ms"]
        xPos  = 6, yPos = 0, width = 6, height = 8, displayName = "duration_ms p50 and p99, per minute"
      }
    },
    {
      title  = "Stage latency p99"
      type   = "table"
      search = { logstore = var.log_logstore, query = local.audit_queries.stage_latency, start = "-86400s", end = "now" }
      display = {
        xAxis = [], yAxis = []
        xPos  = 0, yPos = 8, width = 12, height = 4, displayName = "p99 ms of each stage of the requests that succeeded"
      }
    },
    {
      title  = "Denials by principal"
      type   = "table"
      search = { logstore = var.log_logstore, query = local.audit_queries.denials_by_principal, start = "-86400s", end = "now" }
      display = {
        xAxis = [], yAxis = []
        xPos  = 0, yPos = 12, width = 6, height = 8, displayName = "AccessDenied by principal (decision deny: the approval policy; allow: an upstream refused)"
      }
    },
    {
      title  = "Upstream failures by service"
      type   = "table"
      search = { logstore = var.log_logstore, query = local.audit_queries.upstream_failures, start = "-86400s", end = "now" }
      display = {
        xAxis = [], yAxis = []
        xPos  = 6, yPos = 12, width = 6, height = 8, displayName = "429, 502 and 504 by upstream (sts, eiam, kms, store) and its code"
      }
    },
  ]
}

resource "alicloud_log_store_index" "audit" {
  count = local.log_enabled ? 1 : 0

  project  = var.log_project
  logstore = var.log_logstore

  # FC's own lines (start, end, tracebacks) stay searchable as text.
  full_text {
    case_sensitive = false
    token          = local.sls_token
  }

  # FC's fields of every log entry.
  dynamic "field_search" {
    for_each = toset(["functionName", "qualifier", "instanceID", "versionId"])
    content {
      name             = field_search.value
      type             = "text"
      enable_analytics = true
      token            = local.sls_token
    }
  }

  # The line the function printed: an audit record (or WARNING line), read as JSON.
  field_search {
    name             = "message"
    type             = "json"
    enable_analytics = true
    token            = local.sls_token

    dynamic "json_keys" {
      for_each = local.audit_fields
      content {
        name      = json_keys.key
        type      = json_keys.value
        doc_value = true # analysed (SELECT), not only searched
      }
    }
  }
}

resource "alicloud_log_dashboard" "audit" {
  count = local.log_enabled ? 1 : 0

  project_name   = var.log_project
  dashboard_name = "${var.name_prefix}-audit"
  display_name   = "secret-vending: requests, latency, denials, upstream failures"
  attribute      = jsonencode({ type = "grid" })
  char_list      = jsonencode(local.audit_charts)

  depends_on = [alicloud_log_store_index.audit]
}
