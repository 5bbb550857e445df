terraform {
  # The one place the Terraform version is required (tests/test_terraform_static.py: once only;
  # the README's Deploy section says the same).
  required_version = ">= 1.5.0"

  required_providers {
    alicloud = {
      source = "aliyun/alicloud"
      # role_name and assume_role_policy_document of alicloud_ram_role exist since 1.252.0, and
      # its tags too; tags of alicloud_ram_policy since 1.246.0; deletion_protection of
      # alicloud_kms_key since 1.240.0, its tags since 1.207.0, dkms_instance_id (keys in a KMS
      # instance) since 1.183.0; alicloud_log_alert's 2.0 schema since 1.161.0, its schedule
      # block since 1.176.0.
      version = ">= 1.252.0"
    }
  }
}

provider "alicloud" {
  region = var.region
}
