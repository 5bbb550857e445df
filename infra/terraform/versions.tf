terraform {
  required_version = ">= 1.3.0"

  required_providers {
    alicloud = {
      source = "aliyun/alicloud"
      # role_name and assume_role_policy_document of alicloud_ram_role exist since 1.252.0;
      # dkms_instance_id of alicloud_kms_key (keys in a KMS instance) since 1.183.0.
      version = ">= 1.252.0"
    }
  }
}

provider "alicloud" {
  region = var.region
}
