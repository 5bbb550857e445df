output "function_role_arn" {
  description = "The role of both functions (vend-http and vend-events): `role` in s.yaml."
  value       = alicloud_ram_role.function.arn
}

output "vending_role_arn" {
  description = "The role the function assumes, one secret per session, for EIAM: VEND_ROLE_ARN."
  value       = alicloud_ram_role.vending.arn
}

output "default_key_id" {
  description = "The recipient key of callers without their own: VEND_KMS_KEY_ID."
  value       = alicloud_kms_key.default.id
}

output "recipients" {
  description = "The Recipients list of the approval policy (VEND_POLICY): each caller's role and key."
  value = [
    for name, arn in var.callers : {
      Principal = arn
      KeyId     = alicloud_kms_key.caller[name].id
    }
  ]
}

output "kms_endpoint" {
  description = "VEND_KMS_ENDPOINT (and the callers' KMS endpoint): the shared gateway, where the OpenAPI SDK with STS credentials reaches the instance's keys once Internet access is enabled on the instance; kms-vpc.{region}.aliyuncs.com instead from a function in a VPC. Not the instance's own endpoint ({instance ID}.cryptoservice.kms.aliyuncs.com): it needs the instance's CA certificate in the client, which the code does not set."
  value       = "kms.${var.region}.aliyuncs.com"
}

output "store_password_key_id" {
  description = "The key to seal the Redis password with (KMS Encrypt; README, Deploy)"
  value       = alicloud_kms_key.store_password.id
}
