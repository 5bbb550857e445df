"""What `infra/terraform/` must hold beside the keys (tests/test_terraform_kms.py): a tag on every
resource whose type takes one, the four SLS alerts over the audit records, and the Terraform
version required in one place, the one the README names. Read with an HCL parser, without
`terraform` (CI has none); each check is a function of the files' texts, so the tests below
can show it catching a broken copy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from terraform_hcl import blocks, locals_of, parse, resources, tf_texts, variables

from shared.errors import internal, upstream_error, upstream_timeout

README = Path(__file__).resolve().parent.parent / "README.md"

TAGS = "${local.tags}"

# The resource types whose provider documentation (aliyun/terraform-provider-alicloud,
# website/docs/r/<type>.html.markdown; infra/ASSUMPTIONS.md T1) lists a `tags` argument.
TAGGABLE = frozenset({"alicloud_kms_key", "alicloud_ram_role", "alicloud_ram_policy"})
# The types whose documentation has no `tags` argument, and so carry none.
EXEMPT = {
    "alicloud_kms_alias": "no tags argument: an alias is a name of a tagged key",
    "alicloud_ram_role_policy_attachment": "no tags argument: a link between a role and a policy",
    "alicloud_log_store_index": "no tags argument: the index of a logstore that FC creates",
    "alicloud_log_dashboard": "no tags argument",
    "alicloud_log_alert": "no tags argument: the tags go on each alert as labels instead",
}

# The four alerts, by the name each has in local.alerts (its alert_name is vend-<name, dashed>).
ALERTS = ("upstream_failures", "error_5xx_rate", "denials_spike", "rotation_failures")
THRESHOLDS = {
    "upstream_failures": ["alert_upstream_failures"],
    "error_5xx_rate": ["alert_5xx_min_requests", "alert_5xx_percent"],
    "denials_spike": ["alert_denials"],
    "rotation_failures": ["alert_rotation_failures"],
}
# The outcomes the service answers with a 5xx, as the code makes them.
OUTCOMES_5XX = {err.code for err in (internal(), upstream_error(""), upstream_timeout(""))}


def _documents(texts: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {file: parse(text) for file, text in texts.items()}


def _with(texts: dict[str, str], file: str, old: str, new: str) -> dict[str, str]:
    assert texts[file].count(old) == 1, old
    return {**texts, file: texts[file].replace(old, new)}


# -- Tags ----------------------------------------------------------------------------------------


def tag_problems(texts: dict[str, str]) -> list[str]:
    documents = _documents(texts)
    problems = []
    tags = locals_of(documents).get("tags", "")
    if not re.fullmatch(r'\$\{merge\(\{project = "secret-vending"[^}]*\}, var\.tags\)\}', tags):
        problems.append(f"local.tags is {tags!r}, not merge({{project = ...}}, var.tags)")
    if variables(documents).get("tags", {}).get("type") != "${map(string)}":
        problems.append("no variable tags of type map(string)")
    for kind, name, body in sorted(resources(documents), key=lambda r: (r[0], r[1])):
        if kind in TAGGABLE:
            if body.get("tags") != TAGS:
                problems.append(f"{kind}.{name}.tags is {body.get('tags')!r}, not {TAGS!r}")
        elif kind not in EXEMPT:
            problems.append(f"{kind}.{name}: is its type taggable? (TAGGABLE or EXEMPT)")
    return problems


def test_every_resource_that_takes_tags_has_the_projects_tags() -> None:
    assert tag_problems(tf_texts()) == []


def test_the_lists_of_types_name_only_types_the_template_uses() -> None:
    used = {kind for kind, _, _ in resources(_documents(tf_texts()))}
    assert used == TAGGABLE | set(EXEMPT)


def test_a_resource_without_tags_or_of_an_unlisted_type_is_caught() -> None:
    texts = tf_texts()
    function_policy = (
        "    store_password_key_arn = alicloud_kms_key.store_password.arn\n  })\n  force = true\n"
    )
    untagged = _with(texts, "main.tf", function_policy + "  tags  = local.tags\n", function_policy)
    assert tag_problems(untagged) == [
        "alicloud_ram_policy.function.tags is None, not '${local.tags}'"
    ]
    role = _with(texts, "main.tf", "  tags = local.tags\n", "")
    assert tag_problems(role) == ["alicloud_ram_role.vending.tags is None, not '${local.tags}'"]
    extra = {**texts, "extra.tf": 'resource "alicloud_oss_bucket" "spare" {\n  bucket = "b"\n}\n'}
    assert tag_problems(extra) == [
        "alicloud_oss_bucket.spare: is its type taggable? (TAGGABLE or EXEMPT)"
    ]
    no_project = _with(texts, "main.tf", 'project = "secret-vending", ', "")
    assert [p.split(" is ")[0] for p in tag_problems(no_project)] == ["local.tags"]


# -- Alerts --------------------------------------------------------------------------------------


def _indexed_fields(documents: dict[str, dict[str, Any]]) -> set[str]:
    fields: dict[str, str] = locals_of(documents)["audit_fields"]
    return set(fields)


def alert_problems(texts: dict[str, str]) -> list[str]:
    documents = _documents(texts)
    problems = []
    alerts: dict[str, Any] = locals_of(documents).get("alerts", {})
    for name in ALERTS:
        if name not in alerts:
            problems.append(f"no alert {name}")
    resource = blocks(documents, "resource", "alicloud_log_alert").get("audit")
    if resource is None:
        return [*problems, "no resource alicloud_log_alert.audit"]
    if "local.alerts" not in resource.get(
        "for_each", ""
    ) or "local.log_enabled" not in resource.get("for_each", ""):
        problems.append("the alerts are not one per local.alerts, when the logs are on")
    expected = {
        "version": "2.0",
        "type": "default",
        "project_name": "${var.log_project}",
        "depends_on": ["${alicloud_log_store_index.audit}"],
    }
    for argument, value in expected.items():
        if resource.get(argument) != value:
            problems.append(f"alert {argument} is {resource.get(argument)!r}, not {value!r}")
    (query,) = resource.get("query_list", [{}])
    if (query.get("store"), query.get("query")) != ("${var.log_logstore}", "${each.value.query}"):
        problems.append("the alerts do not query the audit logstore with their own query")
    (severity,) = resource.get("severity_configurations", [{}])
    if severity.get("eval_condition", {}).get("condition") != "${each.value.condition}":
        problems.append("the alerts do not evaluate their own condition")
    (policy,) = resource.get("policy_configuration", [{}])
    if "var.alert_action_policy_id" not in policy.get("action_policy_id", ""):
        problems.append("the alerts notify no var.alert_action_policy_id")
    labels = [d["labels"] for d in resource.get("dynamic", []) if "labels" in d]
    if [label["for_each"] for label in labels] != [TAGS]:
        problems.append("the alerts are not labelled with local.tags")
    indexed = _indexed_fields(documents)
    declared = variables(documents)
    for name, alert in sorted(alerts.items()):
        search, _, sql = alert["query"].partition(" | ")
        if not sql.startswith("SELECT "):
            problems.append(f"{name}: no analysis")
        unindexed = set(re.findall(r"\bmessage\.([A-Za-z_]+)", alert["query"])) - indexed
        if unindexed:
            problems.append(f"{name}: queries fields logs.tf does not index: {sorted(unindexed)}")
        for variable in THRESHOLDS.get(name, []):
            if f"${{var.{variable}}}" not in alert["condition"]:
                problems.append(f"{name}: its condition has no var.{variable}")
            elif "default" not in declared.get(variable, {}):
                problems.append(f"{name}: var.{variable} has no default")
        problems.extend(f"{name}: {p}" for p in _what_it_watches(name, search, sql))
    return problems


def _what_it_watches(name: str, search: str, sql: str) -> list[str]:
    """The records each alert is about (shared/audit.py; README, Audit)."""
    missing = []
    if name == "upstream_failures":
        for needed in ("message.log: audit", "message.outcome: UpstreamError"):
            missing += [needed] if needed not in search else []
        missing += [] if "message.outcome: UpstreamTimeout" in search else ["UpstreamTimeout"]
        missing += [] if "GROUP BY upstream" in sql else ["GROUP BY upstream"]
    elif name == "error_5xx_rate":
        missing += [] if search == "message.log: audit" else ["every audit record"]
        missing += [f"'{code}'" for code in sorted(OUTCOMES_5XX) if f"'{code}'" not in sql]
    elif name == "denials_spike":
        missing += [] if "message.decision: deny" in search else ["message.decision: deny"]
    elif name == "rotation_failures":
        for needed in (
            "message.action: rotate and not message.outcome: ok",
            "message.log: rotation",
        ):
            missing += [needed] if needed not in search else []
    return [f"does not watch {what}" for what in missing]


def test_the_four_alerts_watch_the_audit_records() -> None:
    assert alert_problems(tf_texts()) == []


def test_the_alerts_need_the_index_and_a_project() -> None:
    """No alert without var.log_project: they query fields of logs.tf's index."""
    documents = _documents(tf_texts())
    (logs_locals,) = documents["logs.tf"]["locals"]
    assert logs_locals["log_enabled"] == '${var.log_project != ""}'
    action = variables(documents)["alert_action_policy_id"]
    assert action["default"] == ""  # optional: the alerts still fire into SLS's history


def test_a_missing_alert_is_caught() -> None:
    texts = tf_texts()
    text = texts["alerts.tf"]
    start = text.index("    denials_spike = {\n")
    end = text.index("    }\n", start) + len("    }\n")
    removed = {**texts, "alerts.tf": text[:start] + text[end:]}
    assert alert_problems(removed) == ["no alert denials_spike"]
    assert alert_problems({k: v for k, v in texts.items() if k != "alerts.tf"}) == [
        *(f"no alert {name}" for name in ALERTS),
        "no resource alicloud_log_alert.audit",
    ]


def test_an_alert_watching_the_wrong_records_is_caught() -> None:
    texts = tf_texts()
    no_timeouts = _with(texts, "alerts.tf", " or message.outcome: UpstreamTimeout", "")
    assert alert_problems(no_timeouts) == ["upstream_failures: does not watch UpstreamTimeout"]
    no_500 = _with(texts, "alerts.tf", "'InternalError', ", "")
    assert alert_problems(no_500) == ["error_5xx_rate: does not watch 'InternalError'"]
    no_lines = _with(texts, "alerts.tf", " or message.log: rotation", "")
    assert alert_problems(no_lines) == ["rotation_failures: does not watch message.log: rotation"]
    unindexed = _with(texts, "alerts.tf", "message.decision: deny", "message.level: deny")
    assert alert_problems(unindexed) == [
        "denials_spike: queries fields logs.tf does not index: ['level']",
        "denials_spike: does not watch message.decision: deny",
    ]


def test_a_fixed_threshold_or_no_notification_target_is_caught() -> None:
    texts = tf_texts()
    fixed = _with(texts, "alerts.tf", "denials > ${var.alert_denials}", "denials > 20")
    assert alert_problems(fixed) == ["denials_spike: its condition has no var.alert_denials"]
    silent = _with(
        texts,
        "alerts.tf",
        'action_policy_id = var.alert_action_policy_id == "" ? null : var.alert_action_policy_id',
        'action_policy_id = "sls.builtin"',
    )
    assert alert_problems(silent) == ["the alerts notify no var.alert_action_policy_id"]
    unlabelled = _with(texts, "alerts.tf", "for_each = local.tags", "for_each = {}")
    assert alert_problems(unlabelled) == ["the alerts are not labelled with local.tags"]


# -- The Terraform version -----------------------------------------------------------------------


def version_problems(texts: dict[str, str], readme: str) -> list[str]:
    """`required_version` once, in versions.tf, and the README's "Terraform ≥ x.y" the same."""
    uncommented = {file: re.sub(r"#.*", "", text) for file, text in texts.items()}
    where = [
        f
        for f, text in sorted(uncommented.items())
        for _ in re.finditer(r"\brequired_version\b", text)
    ]
    if where != ["versions.tf"]:
        return [f"required_version in {where}, not once in versions.tf"]
    (block,) = parse(texts["versions.tf"])["terraform"]
    found = re.fullmatch(r">= (\d+)\.(\d+)\.0", block["required_version"])
    if found is None:
        return [f"required_version {block['required_version']!r} is not >= x.y.0"]
    required = f"{found[1]}.{found[2]}"
    said = re.findall(r"Terraform (?:≥|>=) ?v?(\d+\.\d+)", readme)
    if not said:
        return ["the README names no Terraform version"]
    return [
        f"the README says Terraform ≥ {v}, versions.tf {required}" for v in said if v != required
    ]


def test_the_terraform_version_is_required_once_and_the_readme_agrees() -> None:
    assert version_problems(tf_texts(), README.read_text()) == []


def test_a_second_or_disagreeing_version_is_caught() -> None:
    texts, readme = tf_texts(), README.read_text()
    twice = {**texts, "extra.tf": 'terraform {\n  required_version = ">= 1.3.0"\n}\n'}
    assert version_problems(twice, readme) == [
        "required_version in ['extra.tf', 'versions.tf'], not once in versions.tf"
    ]
    older = _with(texts, "versions.tf", '">= 1.5.0"', '">= 1.3.0"')
    assert version_problems(older, readme) == ["the README says Terraform ≥ 1.5, versions.tf 1.3"]
    assert version_problems(texts, readme.replace("Terraform ≥ 1.5", "Terraform ≥ 1.6")) == [
        "the README says Terraform ≥ 1.6, versions.tf 1.5"
    ]
