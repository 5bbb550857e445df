"""Every KMS key that `infra/terraform/` creates lives in the KMS instance `var.kms_instance_id`.

A key without `dkms_instance_id` is a default key: KMS documents default keys for server-side
encryption by Alibaba Cloud services only, not for an application's GenerateDataKey or Decrypt,
and allows one default CMK per region (KMS docs, "Getting started with keys", "Manage keys").
Such a key would deploy cleanly and fail at the first vend, so the .tf files are read here with
an HCL parser: every `resource "alicloud_kms_key"` block, in any .tf file of the directory.
Every key is also protected from deletion (a deleted key loses every envelope) and tagged.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import hcl_eval
import pytest
from terraform_hcl import TERRAFORM_DIR, blocks, parse, tf_texts, variables

INSTANCE = "${var.kms_instance_id}"

# What every key must say, and why (main.tf cites the sources): a software-protected AES-256
# key in the instance, for encryption, rotating unless rotation is turned off.
REQUIRED: dict[str, str] = {
    "dkms_instance_id": INSTANCE,
    "key_usage": "ENCRYPT/DECRYPT",
    "key_spec": "Aliyun_AES_256",
    "protection_level": "SOFTWARE",
    "automatic_rotation": '${var.key_rotation_days == 0 ? "Disabled" : "Enabled"}',
    "rotation_interval": "${local.key_rotation_interval}",
    # The provider schedules the deletion with it, and fails to delete without it.
    "pending_window_in_days": "${var.key_pending_window_in_days}",
    # A deleted key loses every envelope sealed with it: KMS refuses to delete a protected key.
    "deletion_protection": "Enabled",
    "tags": "${local.tags}",
}


def kms_key_problems(texts: dict[str, str]) -> list[str]:
    """What is wrong with the `alicloud_kms_key` resources of these .tf texts (file -> text)."""
    documents = {file: parse(text) for file, text in texts.items()}
    keys = blocks(documents, "resource", "alicloud_kms_key")
    problems = []
    if not keys:
        problems.append("no alicloud_kms_key resource")
    for name, body in sorted(keys.items()):
        for argument, expected in REQUIRED.items():
            if body.get(argument) != expected:
                problems.append(f"{name}.{argument} is {body.get(argument)!r}, not {expected!r}")
    return problems


def instance_variable_problems(texts: dict[str, str]) -> list[str]:
    documents = {file: parse(text) for file, text in texts.items()}
    variable = variables(documents).get("kms_instance_id")
    if variable is None:
        return ["no variable kms_instance_id"]
    problems = []
    if "default" in variable:
        problems.append("kms_instance_id has a default: every deployment names its instance")
    if variable.get("type") != "string":
        problems.append("kms_instance_id is not a string")
    if len(variable.get("validation", [])) != 1:
        problems.append("kms_instance_id has no validation")
    return problems


def _main_tf_with(old: str, new: str) -> dict[str, str]:
    texts = tf_texts()
    assert texts["main.tf"].count(old) >= 1, old
    texts["main.tf"] = texts["main.tf"].replace(old, new)
    return texts


# -- The files as they are ----------------------------------------------------------------------


def test_the_template_parses_and_has_the_three_kinds_of_key() -> None:
    documents = {file: parse(text) for file, text in tf_texts().items()}
    assert set(documents) >= {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
    keys = blocks(documents, "resource", "alicloud_kms_key")
    assert set(keys) == {"default", "caller", "store_password"}
    assert keys["caller"]["for_each"] == "${var.callers}"


def test_every_kms_key_is_a_rotating_software_key_in_the_instance() -> None:
    assert kms_key_problems(tf_texts()) == []


def test_the_instance_variable_is_required_and_validated() -> None:
    assert instance_variable_problems(tf_texts()) == []


def test_no_kms_key_is_read_or_made_elsewhere() -> None:
    """Keys come from these two resources only: no data source or module brings in a key (a
    default key, say) that the function's role could be granted."""
    documents = {file: parse(text) for file, text in tf_texts().items()}
    assert blocks(documents, "data", "alicloud_kms_keys") == {}
    assert all("module" not in document for document in documents.values())


_CONDITION_REGEX = re.compile(r'regex\("((?:[^"\\]|\\.)*)"')


def test_the_instance_id_pattern_takes_documented_ids_only() -> None:
    """The IDs in the KMS docs (CreateKey's DKMSInstanceId, the instance endpoint example) pass;
    an endpoint, a key ID, a wildcard or another case does not."""
    documents = {file: parse(text) for file, text in tf_texts().items()}
    (validation,) = variables(documents)["kms_instance_id"]["validation"]
    (pattern,) = _CONDITION_REGEX.findall(validation["condition"])
    check = re.compile(pattern)
    for good in ("kst-bjj62d8f5e0sgtx8h1234", "kst-hzz65f176a0ogplgq1234", "kst-phzz64f722a1bu"):
        assert check.search(good), good
    for bad in (
        "",
        "kst-",
        "KST-HZZ65F176A0OGPLGQ",
        "kst-hzz65f176a0ogplgq1234.cryptoservice.kms.aliyuncs.com",
        "key-hzz62f1cb66fa42qo1234",
        "kst-*",
        " kst-abc",
    ):
        assert not check.search(bad), bad


def test_the_rotation_period_is_written_in_seconds() -> None:
    """DescribeKey answers the period in seconds and the provider keeps that answer: a period in
    days would show a change on every plan."""
    documents = {file: parse(text) for file, text in tf_texts().items()}
    (local_values,) = documents["main.tf"]["locals"]
    expression = local_values["key_rotation_interval"]
    assert "var.key_rotation_days * 86400}s" in expression
    assert expression.startswith("${var.key_rotation_days == 0 ? null : ")
    default = variables(documents)["key_rotation_days"]["default"]
    assert default == 0 or 7 <= default <= 365


# -- The checks catch what they are for ---------------------------------------------------------


def test_a_key_without_the_instance_is_caught() -> None:
    texts = _main_tf_with("  dkms_instance_id       = var.kms_instance_id\n", "")
    problems = kms_key_problems(texts)
    assert problems == [
        f"caller.dkms_instance_id is None, not {INSTANCE!r}",
        f"default.dkms_instance_id is None, not {INSTANCE!r}",
        f"store_password.dkms_instance_id is None, not {INSTANCE!r}",
    ]


def test_a_key_that_can_be_deleted_or_has_no_tags_is_caught() -> None:
    texts = _main_tf_with('  deletion_protection    = "Enabled"\n', "")
    texts["main.tf"] = texts["main.tf"].replace("  tags                   = local.tags\n", "", 1)
    assert kms_key_problems(texts) == [
        "caller.deletion_protection is None, not 'Enabled'",
        "default.deletion_protection is None, not 'Enabled'",
        "default.tags is None, not '${local.tags}'",
        "store_password.deletion_protection is None, not 'Enabled'",
    ]
    disabled = _main_tf_with(
        'deletion_protection    = "Enabled"', 'deletion_protection    = "Disabled"'
    )
    assert kms_key_problems(disabled) == [
        "caller.deletion_protection is 'Disabled', not 'Enabled'",
        "default.deletion_protection is 'Disabled', not 'Enabled'",
        "store_password.deletion_protection is 'Disabled', not 'Enabled'",
    ]


def test_a_key_in_another_instance_or_of_another_kind_is_caught() -> None:
    texts = _main_tf_with(
        '  protection_level       = "SOFTWARE"\n', '  protection_level       = "HSM"\n'
    )
    texts["main.tf"] = texts["main.tf"].replace(
        "dkms_instance_id       = var.kms_instance_id", 'dkms_instance_id       = "kst-other"', 1
    )
    assert kms_key_problems(texts) == [
        "caller.protection_level is 'HSM', not 'SOFTWARE'",
        f"default.dkms_instance_id is 'kst-other', not {INSTANCE!r}",
        "default.protection_level is 'HSM', not 'SOFTWARE'",
        "store_password.protection_level is 'HSM', not 'SOFTWARE'",
    ]


def test_a_key_added_in_another_file_is_caught() -> None:
    texts = tf_texts()
    texts["extra.tf"] = (
        'resource "alicloud_kms_key" "spare" {\n'
        '  key_spec         = "Aliyun_AES_256"\n'
        '  protection_level = "SOFTWARE"\n'
        "}\n"
    )
    problems = kms_key_problems(texts)
    assert "spare.dkms_instance_id is None, not '${var.kms_instance_id}'" in problems
    assert all(p.startswith("spare.") for p in problems)


def test_a_default_or_missing_instance_variable_is_caught() -> None:
    texts = tf_texts()
    with_default = texts["variables.tf"].replace(
        'variable "kms_instance_id" {\n', 'variable "kms_instance_id" {\n  default = "kst-abc"\n'
    )
    assert with_default != texts["variables.tf"]
    assert instance_variable_problems({**texts, "variables.tf": with_default}) == [
        "kms_instance_id has a default: every deployment names its instance"
    ]
    renamed = texts["variables.tf"].replace('variable "kms_instance_id"', 'variable "kms_id"')
    assert instance_variable_problems({**texts, "variables.tf": renamed}) == [
        "no variable kms_instance_id"
    ]


# -- The validations, as Terraform evaluates them -------------------------------------------------

PLAN_VALUES = [
    ({"kms_instance_id": "kst-hzz65f176a0ogplgq1234"}, True),
    ({"kms_instance_id": "kst-abc", "key_rotation_days": "0"}, True),
    ({"kms_instance_id": "kst-abc", "key_rotation_days": "365"}, True),
    ({"kms_instance_id": "kst-abc", "key_rotation_days": "366"}, False),
    ({"kms_instance_id": "kst-abc", "key_pending_window_in_days": "366"}, True),
    ({"kms_instance_id": "kst-abc", "key_pending_window_in_days": "6"}, False),
    ({"kms_instance_id": "kst-abc.cryptoservice.kms.aliyuncs.com"}, False),
    ({"kms_instance_id": "key-hzz62f1cb66fa42qo1234"}, False),
    ({"kms_instance_id": "kst-abc", "key_rotation_days": "6"}, False),
    ({"kms_instance_id": "kst-abc", "key_rotation_days": "7.5"}, False),
    ({"kms_instance_id": "kst-abc", "key_rotation_days": "seven"}, False),
    ({}, False),  # no instance: required
]
REQUIRED_VALUES = {"account_id": "1234567890123456", "idaas_instance_id": "idaas_1"}


@pytest.mark.parametrize(("values", "accepted"), PLAN_VALUES)
def test_the_kms_variables_are_checked(values: dict[str, str], accepted: bool) -> None:
    """The validations of variables.tf evaluated without Terraform (tests/hcl_eval.py): what
    `terraform plan` answers below, on CI too."""
    documents = {file: parse(text) for file, text in tf_texts().items()}
    assert hcl_eval.accepted(variables(documents), {**REQUIRED_VALUES, **values}) is accepted


def test_every_validation_is_read_without_terraform() -> None:
    """Every condition of variables.tf is in the part of HCL that tests/hcl_eval.py reads, and
    the defaults pass it: a new kind of condition fails here rather than going unchecked."""
    documents = {file: parse(text) for file, text in tf_texts().items()}
    declared = variables(documents)
    conditions = [v["condition"] for b in declared.values() for v in b.get("validation", [])]
    assert len(conditions) >= 10
    values = {"kms_instance_id": "kst-abc", **REQUIRED_VALUES}
    assert hcl_eval.accepted(declared, values)
    with pytest.raises(ValueError, match="lower"):
        hcl_eval.evaluate("${lower(var.region) == var.region}", {"region": "cn-hangzhou"})


# -- Terraform itself, where it is installed ----------------------------------------------------


@pytest.mark.parametrize(("values", "accepted"), PLAN_VALUES)
def test_terraform_checks_the_kms_variables(
    terraform: str, tmp_path: Path, values: dict[str, str], accepted: bool
) -> None:
    """`terraform plan` of variables.tf alone (no provider to install): the validations as
    Terraform evaluates them."""
    shutil.copy(TERRAFORM_DIR / "variables.tf", tmp_path / "variables.tf")
    values = {**REQUIRED_VALUES, **values}
    args = [arg for name, value in values.items() for arg in ("-var", f"{name}={value}")]
    result = subprocess.run(
        [terraform, "plan", "-input=false", "-no-color", "-lock=false", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr
