# secret-vending: the RAM roles, RAM policies and KMS keys around the two functions.
#
# Why Terraform (alicloud provider) and not ROS:
# - The RAM policy documents must be separate JSON files that the template reads, and the very
#   files the tests evaluate (infra/policies/*.json). Terraform reads them at plan time with
#   templatefile(); a ROS template cannot read another file when it is deployed, so the
#   documents would have to be copied into the template, and the copy is what would be deployed.
# - The files are filled by templatefile() here and by infra/policies.py in the tests (the
#   placeholders are only ${name} and ${jsonencode(name)}, which both read the same way), so the
#   tests evaluate exactly what is deployed: tests/test_infra_policies.py also checks that every
#   file is read here, with exactly the variables it names.
# - Per-caller keys and policies are a for_each over one map variable.
# The cost: Terraform keeps a state file, which must be stored safely (it holds no secret here:
# no access key, no key material, only ARNs and IDs).
#
# What this creates:
# - the function's role, trusted by Function Compute only, which may assume the vending role,
#   make data keys (kms:GenerateDataKey) with the default and the callers' keys, and queue the
#   rotation schedule's batches (fc:InvokeFunction on vend-rotation alone), nothing else;
# - the vending role, trusted by the function's role only, which may obtain, create, list,
#   disable and delete client secrets of the applications of one IDaaS instance (the last two
#   for rotation's retirement of old secrets), nothing else (the function narrows every session
#   further to one action on one ARN with a session policy);
# - the default KMS key and one recipient key per caller, an alias each, all of them
#   software-protected AES-256 keys in one KMS instance (var.kms_instance_id);
# - per caller, a policy allowing kms:Decrypt with its own key only, attached to its role.
# Every key has deletion protection (destroying one needs a change turning it off first), and
# every resource whose type takes tags has local.tags (the project's, and var.tags).
#
# Why a KMS instance: a key outside one is a default key, which KMS documents for server-side
# encryption by Alibaba Cloud services and not for client-side encryption by an application (the
# function's GenerateDataKey, the callers' Decrypt), and an account has one default CMK per
# region (KMS docs, "Getting started with keys", "Manage keys"; see the README's Deploy section). The instance is bought and enabled (bound to a
# VPC) beforehand and is not created here: it is a subscription or pay-as-you-go purchase with
# its own VPC and vSwitches, and outlives any one deployment.
#
# The function calls KMS with the ordinary OpenAPI SDK and STS credentials, at the shared
# gateway (kms.{region}.aliyuncs.com, or kms-vpc.{region}.aliyuncs.com from a VPC). KMS serves
# cryptographic calls on an instance's keys there only once "Internet access" is enabled on the
# instance, which can be done in the console only ("Access KMS instance keys over the
# Internet"), so it is a step of the README, not a resource here.
#
# Policies name KMS keys by their ARN (acs:kms:{region}:{account}:key/{key id}); give the
# service key IDs (the outputs), not aliases.
#
# Not granted here, on purpose (the function's role holds nothing beyond its three statements):
# - Logs: on FC 3.0 `logConfig` is served by FC's service-linked role AliyunServiceRoleForFC,
#   not by the function's role (FC docs, "Service-linked role of Function Compute").
# - vend-events' async on-failure destination: FC documents a permission for delivering to it
#   (fc:InvokeFunction on a destination function, mns:SendMessage on a queue, ...). If FC
#   delivers with the function's role in your account, add that one statement on that one
#   destination ARN as its own policy, beside these.
#
#   terraform init
#   terraform apply -var account_id=... -var idaas_instance_id=... -var kms_instance_id=kst-... \
#     -var 'callers={billing="acs:ram::...:role/billing"}'

locals {
  policy_dir = "${path.module}/../policies"

  # The tags of every resource whose type takes them (tests/test_terraform_static.py lists the
  # types that do not); var.tags adds to them or overrides them.
  tags = merge({ project = "secret-vending", managed_by = "terraform" }, var.tags)

  # The keys the function may make data keys with: the default key and every recipient key.
  data_key_arns = concat(
    [alicloud_kms_key.default.arn],
    [for name, key in alicloud_kms_key.caller : key.arn]
  )

  # DescribeKey answers the period in seconds, and the provider keeps that answer with no diff
  # suppression (its acceptance test for instance keys sets and reads back "605800s"): a period
  # written in days would differ from the state on every plan.
  key_rotation_interval = var.key_rotation_days == 0 ? null : "${var.key_rotation_days * 86400}s"

  # The rotation schedule's function (s.yaml), which invokes itself once per batch of a run.
  rotation_function_arn = "acs:fc:${var.region}:${var.account_id}:functions/vend-rotation"

  # acs:ram::{account}:role/{RoleName} -> RoleName
  caller_role_names = {
    for name, arn in var.callers : name => element(split(":role/", arn), 1)
  }
}

# -- KMS: the default key and one recipient key per caller, in the KMS instance ------------------
#
# Every key is alike:
# - dkms_instance_id: outside an instance the key would be a default key, which cannot make data
#   keys for this function (see the header).
# - protection_level SOFTWARE: var.kms_instance_id must be a software key management instance,
#   as only its symmetric keys rotate (KMS API, "UpdateRotationPolicy"; "Understanding KMS
#   keys"). It is also the provider's default, and the provider replaces a key whose protection
#   level reads back otherwise.
# - key_spec Aliyun_AES_256: the symmetric specification of a software-protected key ("Key
#   management types and key specifications"); GenerateDataKey needs a symmetric key.
# - automatic_rotation: a rotation adds a primary version; envelopes sealed before still open,
#   as Decrypt uses the version that sealed them ("Automatic key rotation").
# - pending_window_in_days: the provider schedules the deletion with it and fails without it.
# - deletion_protection Enabled: a deleted key loses every envelope sealed with it, so KMS
#   refuses to schedule its deletion (SetDeletionProtection) until someone turns this off, in a
#   change of its own; `terraform destroy` fails on these keys, on purpose.

resource "alicloud_kms_key" "default" {
  description            = "secret-vending: the default recipient key (callers without their own)"
  dkms_instance_id       = var.kms_instance_id
  key_usage              = "ENCRYPT/DECRYPT"
  key_spec               = "Aliyun_AES_256"
  protection_level       = "SOFTWARE"
  automatic_rotation     = var.key_rotation_days == 0 ? "Disabled" : "Enabled"
  rotation_interval      = local.key_rotation_interval
  status                 = "Enabled"
  pending_window_in_days = var.key_pending_window_in_days
  deletion_protection    = "Enabled"
  tags                   = local.tags
}

resource "alicloud_kms_alias" "default" {
  alias_name = "alias/${var.name_prefix}-default"
  key_id     = alicloud_kms_key.default.id
}

resource "alicloud_kms_key" "caller" {
  for_each = var.callers

  description            = "secret-vending: the recipient key of ${each.key} (${each.value})"
  dkms_instance_id       = var.kms_instance_id
  key_usage              = "ENCRYPT/DECRYPT"
  key_spec               = "Aliyun_AES_256"
  protection_level       = "SOFTWARE"
  automatic_rotation     = var.key_rotation_days == 0 ? "Disabled" : "Enabled"
  rotation_interval      = local.key_rotation_interval
  status                 = "Enabled"
  pending_window_in_days = var.key_pending_window_in_days
  deletion_protection    = "Enabled"
  tags                   = local.tags
}

resource "alicloud_kms_alias" "caller" {
  for_each = var.callers

  alias_name = "alias/${var.name_prefix}-${each.key}"
  key_id     = alicloud_kms_key.caller[each.key].id
}

# The Redis password of the idempotency store is given to the functions only as a ciphertext
# of this key (VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT, made once by the operator with KMS
# Encrypt); the function's role may Decrypt with it and with no other key.
resource "alicloud_kms_key" "store_password" {
  description            = "secret-vending: seals the idempotency store's Redis password"
  dkms_instance_id       = var.kms_instance_id
  key_usage              = "ENCRYPT/DECRYPT"
  key_spec               = "Aliyun_AES_256"
  protection_level       = "SOFTWARE"
  automatic_rotation     = var.key_rotation_days == 0 ? "Disabled" : "Enabled"
  rotation_interval      = local.key_rotation_interval
  status                 = "Enabled"
  pending_window_in_days = var.key_pending_window_in_days
  deletion_protection    = "Enabled"
  tags                   = local.tags
}

resource "alicloud_kms_alias" "store_password" {
  alias_name = "alias/${var.name_prefix}-store-password"
  key_id     = alicloud_kms_key.store_password.id
}

# -- The function's role: assumed by FC for both functions ---------------------------------------

resource "alicloud_ram_role" "function" {
  role_name                   = "${var.name_prefix}-function"
  description                 = "secret-vending: the role of the vend-http, vend-events and vend-rotation functions"
  assume_role_policy_document = templatefile("${local.policy_dir}/fc-function-trust.json", {})
  tags                        = local.tags
}

resource "alicloud_ram_policy" "function" {
  policy_name = "${var.name_prefix}-function"
  description = "secret-vending: assume the vending role; make data keys with the recipient keys; decrypt the store password; queue rotation batches"
  policy_document = templatefile("${local.policy_dir}/fc-function.json", {
    vending_role_arn       = alicloud_ram_role.vending.arn
    data_key_arns          = local.data_key_arns
    rotation_function_arn  = local.rotation_function_arn
    store_password_key_arn = alicloud_kms_key.store_password.arn
  })
  force = true
  tags  = local.tags
}

resource "alicloud_ram_role_policy_attachment" "function" {
  role_name   = alicloud_ram_role.function.role_name
  policy_name = alicloud_ram_policy.function.policy_name
  policy_type = "Custom"
}

# -- The vending role: assumed by the function, one secret per session ---------------------------

resource "alicloud_ram_role" "vending" {
  role_name            = "${var.name_prefix}-eiam"
  description          = "secret-vending: obtain, create, list, disable and delete client secrets of one IDaaS instance"
  max_session_duration = 3600
  assume_role_policy_document = templatefile("${local.policy_dir}/vend-eiam-trust.json", {
    function_principal = alicloud_ram_role.function.arn
  })
  tags = local.tags
}

resource "alicloud_ram_policy" "vending" {
  policy_name = "${var.name_prefix}-eiam"
  description = "secret-vending: client secrets of the applications of one IDaaS instance"
  policy_document = templatefile("${local.policy_dir}/vend-eiam.json", {
    region      = var.region
    account_id  = var.account_id
    instance_id = var.idaas_instance_id
  })
  force = true
  tags  = local.tags
}

resource "alicloud_ram_role_policy_attachment" "vending" {
  role_name   = alicloud_ram_role.vending.role_name
  policy_name = alicloud_ram_policy.vending.policy_name
  policy_type = "Custom"
}

# -- Callers: each may decrypt with its own recipient key only -----------------------------------

resource "alicloud_ram_policy" "caller_decrypt" {
  for_each = var.callers

  policy_name = "${var.name_prefix}-decrypt-${each.key}"
  description = "secret-vending: open envelopes sealed for ${each.key}"
  policy_document = templatefile("${local.policy_dir}/caller-decrypt.json", {
    key_arn = alicloud_kms_key.caller[each.key].arn
  })
  force = true
  tags  = local.tags
}

resource "alicloud_ram_role_policy_attachment" "caller_decrypt" {
  for_each = var.attach_caller_policies ? var.callers : {}

  role_name   = local.caller_role_names[each.key]
  policy_name = alicloud_ram_policy.caller_decrypt[each.key].policy_name
  policy_type = "Custom"
}
