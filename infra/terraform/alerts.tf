# -- Log Service: alerts over the audit records that logs.tf indexes ------------------------------
#
# Four alert rules (alicloud_log_alert, the 2.0 schema), each a query over the logstore of the
# functions' logs and a condition on its result, evaluated every 5 minutes over the last 5:
# - upstream_failures: requests that failed because an upstream did (outcome UpstreamError or
#   UpstreamTimeout), per upstream (sts, eiam, kms, store): one alert per failing service.
# - error_5xx_rate: the share of requests answered with a 5xx. The audit record has no HTTP
#   status; the outcomes that are 5xx are InternalError (500), UpstreamError (502) and
#   UpstreamTimeout (504) (CONTRACT section 8).
# - denials_spike: requests the approval policy denied (decision deny).
# - rotation_failures: rotations whose audit record's outcome is not ok, and the `vend.rotation`
#   WARNING lines of a scheduled run ("log":"rotation" with an `outcome`: an application it
#   could not step, or a batch it could not queue, which has no audit record).
# They query only fields that logs.tf indexes, so they too are off until var.log_project names
# the project, and come after the index.
#
# Who is told: the built-in alert policy sls.builtin.dynamic sends each alert to the action
# policy its rule names (SLS, "Dynamic action policy mechanism"): var.alert_action_policy_id,
# an action policy made beforehand in the SLS console (the channels: SMS, email, DingTalk,
# webhook ...). Empty: the alerts fire and are kept in SLS's alert history, but nobody is told.
#
# alicloud_log_alert takes no tags: local.tags go on each alert as labels, which SLS attaches to
# every alert it fires.

locals {
  # The indexed audit fields these queries name are checked against logs.tf's audit_fields by
  # tests/test_terraform_static.py.
  alerts = {
    upstream_failures = {
      display   = "secret-vending: upstream failures by service"
      query     = "message.log: audit and (message.outcome: UpstreamError or message.outcome: UpstreamTimeout) | SELECT \"message.upstream\" AS upstream, count(*) AS failures GROUP BY upstream"
      condition = "failures > ${var.alert_upstream_failures}"
      group_by  = ["upstream"]
      severity  = 8
    }
    error_5xx_rate = {
      display   = "secret-vending: 5xx rate"
      query     = "message.log: audit | SELECT count(*) AS requests, round(100.0 * count_if(\"message.outcome\" IN ('InternalError', 'UpstreamError', 'UpstreamTimeout')) / count(*), 2) AS error_5xx_percent"
      condition = "requests >= ${var.alert_5xx_min_requests} && error_5xx_percent > ${var.alert_5xx_percent}"
      group_by  = []
      severity  = 8
    }
    denials_spike = {
      display   = "secret-vending: denials spike"
      query     = "message.log: audit and message.decision: deny | SELECT count(*) AS denials"
      condition = "denials > ${var.alert_denials}"
      group_by  = []
      severity  = 6
    }
    rotation_failures = {
      display   = "secret-vending: rotation failures"
      query     = "(message.log: audit and message.action: rotate and not message.outcome: ok) or message.log: rotation | SELECT count_if(\"message.log\" = 'audit') AS failed_rotations, count_if(\"message.log\" = 'rotation' AND \"message.outcome\" IS NOT NULL) AS failed_steps"
      condition = "failed_rotations + failed_steps > ${var.alert_rotation_failures}"
      group_by  = []
      severity  = 8
    }
  }
}

resource "alicloud_log_alert" "audit" {
  for_each = { for name, alert in local.alerts : name => alert if local.log_enabled }

  version           = "2.0"
  type              = "default"
  project_name      = var.log_project
  alert_name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  alert_displayname = each.value.display

  schedule {
    type     = "FixedRate"
    interval = "5m"
  }

  query_list {
    store          = var.log_logstore
    store_type     = "log"
    project        = var.log_project
    region         = var.region
    query          = each.value.query
    time_span_type = "Relative"
    start          = "-5m"
    end            = "now"
    power_sql_mode = "disable"
  }

  group_configuration {
    type   = length(each.value.group_by) == 0 ? "no_group" : "custom"
    fields = each.value.group_by
  }

  severity_configurations {
    severity = each.value.severity
    eval_condition = {
      condition       = each.value.condition
      count_condition = ""
    }
  }

  policy_configuration {
    alert_policy_id  = "sls.builtin.dynamic"
    action_policy_id = var.alert_action_policy_id == "" ? null : var.alert_action_policy_id
    repeat_interval  = "1h"
  }

  send_resolved = true

  dynamic "labels" {
    for_each = local.tags
    content {
      key   = labels.key
      value = labels.value
    }
  }

  depends_on = [alicloud_log_store_index.audit]
}
