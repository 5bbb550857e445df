variable "region" {
  description = "The region of the function, the KMS keys and the IDaaS (EIAM) instance: VEND_REGION."
  type        = string
  default     = "cn-hangzhou"

  validation {
    condition     = can(regex("^[a-z]{2,}-[a-z0-9-]+$", var.region))
    error_message = "The region must look like cn-hangzhou."
  }
}

variable "account_id" {
  description = "The Alibaba Cloud account (UID) that owns everything here: VEND_ACCOUNT_ID."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{16}$", var.account_id))
    error_message = "The account ID is 16 digits."
  }
}

variable "idaas_instance_id" {
  description = "The IDaaS (EIAM) instance whose application client secrets are vended; the vending role reaches no other."
  type        = string

  validation {
    # The service's own rule for IDs: no wildcard, slash or colon can widen the policy.
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.idaas_instance_id))
    error_message = "The instance ID is 1 to 64 of A-Z a-z 0-9 _ -."
  }
}

variable "kms_instance_id" {
  description = "The KMS instance (software key management, enabled, with Internet access on) that holds every key here, kst-...: a default key serves no client-side encryption (the function's GenerateDataKey, the callers' Decrypt), and an account has one per region."
  type        = string

  validation {
    # The form of every instance ID in the KMS docs (kst-, then lowercase letters and digits; no
    # grammar is published): a pasted endpoint, ARN or key ID fails here, not at CreateKey.
    condition     = can(regex("^kst-[a-z0-9]+$", var.kms_instance_id))
    error_message = "The KMS instance ID looks like kst-hzz65f176a0ogplgq1234: kst-, then a-z 0-9."
  }
}

variable "callers" {
  description = "The callers: a short name (for the key alias and policy names) to the ARN of the caller's RAM role in this account, acs:ram::{account}:role/{name}. Each gets a recipient key and a policy to decrypt with it."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name, arn in var.callers :
      can(regex("^[a-z0-9][a-z0-9-]{0,31}$", name)) && can(regex("^acs:ram::[0-9]{16}:role/[A-Za-z0-9.-]{1,64}$", arn))
    ])
    error_message = "Each caller is name = \"acs:ram::{account}:role/{RoleName}\", the name 1 to 32 of a-z 0-9 - (not starting with -)."
  }
}

variable "attach_caller_policies" {
  description = "Attach each caller's decrypt policy to its role (false: create the policies only, for roles managed elsewhere)."
  type        = bool
  default     = true
}

variable "name_prefix" {
  description = "Prefix of the role, policy and alias names."
  type        = string
  default     = "vend"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name_prefix))
    error_message = "The prefix is 1 to 20 of a-z 0-9 -, starting with a letter."
  }
}

variable "key_pending_window_in_days" {
  description = "Days a KMS key waits in PendingDeletion before it is deleted (7 to 366, ScheduleKeyDeletion): envelopes made under a deleted key can never be opened."
  type        = number
  default     = 30

  validation {
    condition     = var.key_pending_window_in_days >= 7 && var.key_pending_window_in_days <= 366 && floor(var.key_pending_window_in_days) == var.key_pending_window_in_days
    error_message = "The pending window is a whole number of days from 7 to 366."
  }
}

variable "key_rotation_days" {
  description = "Days between automatic rotations of each key (7 to 365: CreateKey and UpdateRotationPolicy give that range for software-protected keys), 0 for none. A rotation adds a key version: old envelopes still open (Decrypt uses the version that sealed them), but each version counts against the instance's key quota and is billed as a key."
  type        = number
  default     = 365

  validation {
    condition     = var.key_rotation_days == 0 || (var.key_rotation_days >= 7 && var.key_rotation_days <= 365 && floor(var.key_rotation_days) == var.key_rotation_days)
    error_message = "The rotation period is 0 (none) or a whole number of days from 7 to 365."
  }
}

variable "log_project" {
  description = "The Log Service project of the functions' logs (logConfig: auto creates serverless-{region}-..., printed by `s deploy`), for the audit index and dashboard (logs.tf); empty (the default): none, as before the first deploy."
  type        = string
  default     = ""

  validation {
    # SLS project names: 3 to 63 of a-z 0-9 -, starting and ending with a letter or a digit.
    condition     = var.log_project == "" || can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.log_project))
    error_message = "The project is empty or 3 to 63 of a-z 0-9 -, starting and ending with a-z or 0-9."
  }
}

variable "log_logstore" {
  description = "The logstore of the functions' logs in log_project: default-logs for logConfig: auto."
  type        = string
  default     = "default-logs"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.log_logstore))
    error_message = "The logstore is 3 to 63 of a-z 0-9 _ -, starting and ending with a-z or 0-9."
  }
}

variable "tags" {
  description = "Tags added to (or overriding) project = \"secret-vending\" and managed_by = \"terraform\" on every resource that takes tags (the KMS keys, RAM roles and policies) and, as labels, on the SLS alerts."
  type        = map(string)
  default     = {}
}

variable "alert_action_policy_id" {
  description = "The SLS action policy (made in the SLS console: who is told, and how) that the alerts of alerts.tf notify; empty (the default): the alerts fire into SLS's alert history only."
  type        = string
  default     = ""
}

variable "alert_upstream_failures" {
  description = "Alert when more than this many requests in 5 minutes failed because one upstream (sts, eiam, kms, store) did."
  type        = number
  default     = 5

  validation {
    condition     = var.alert_upstream_failures >= 0 && floor(var.alert_upstream_failures) == var.alert_upstream_failures
    error_message = "The threshold is a whole number, 0 or more."
  }
}

variable "alert_5xx_percent" {
  description = "Alert when more than this percentage of the requests in 5 minutes were answered with a 5xx (InternalError, UpstreamError, UpstreamTimeout)."
  type        = number
  default     = 5

  validation {
    condition     = var.alert_5xx_percent >= 0 && var.alert_5xx_percent < 100
    error_message = "The percentage is from 0 to less than 100."
  }
}

variable "alert_5xx_min_requests" {
  description = "The 5xx rate alerts only over at least this many requests in 5 minutes (one failed request of two is no rate)."
  type        = number
  default     = 20

  validation {
    condition     = var.alert_5xx_min_requests >= 1 && floor(var.alert_5xx_min_requests) == var.alert_5xx_min_requests
    error_message = "The minimum is a whole number, 1 or more."
  }
}

variable "alert_denials" {
  description = "Alert when more than this many requests in 5 minutes were denied by the approval policy (decision deny)."
  type        = number
  default     = 20

  validation {
    condition     = var.alert_denials >= 0 && floor(var.alert_denials) == var.alert_denials
    error_message = "The threshold is a whole number, 0 or more."
  }
}

variable "alert_rotation_failures" {
  description = "Alert when more than this many rotations (and steps of scheduled runs) failed in 5 minutes; 0 (the default): any failure."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_rotation_failures >= 0 && floor(var.alert_rotation_failures) == var.alert_rotation_failures
    error_message = "The threshold is a whole number, 0 or more."
  }
}
