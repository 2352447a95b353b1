from pathlib import Path

import pytest

from connectors.spec import SpecError, interpolate, load_specs, parse_spec

SPECS_DIR = Path(__file__).parents[3] / "connectors" / "specs"
ENV = {
    "HW_PG_HOST": "db",
    "HW_PG_CONNECT_HOST": "db",
    "HW_PG_PORT": "5432",
    "HW_PG_USER": "u",
    "HW_PG_SOURCE_DB": "shop",
    "HW_KAFKA_TOPIC_PREFIX": "shop",
}


def test_interpolate_replaces_variables_and_defaults() -> None:
    assert interpolate("${A}:${B:-9}", {"A": "x"}, "here") == "x:9"


def test_interpolate_names_a_missing_variable() -> None:
    with pytest.raises(SpecError, match=r"here: variable \$\{MISSING\} is not set"):
        interpolate("${MISSING}", {}, "here")


def test_shipped_specs_resolve_every_variable_but_leave_the_secret_to_connect() -> None:
    specs = load_specs(SPECS_DIR, ENV, secret_names={"HW_PG_PASSWORD"})
    assert [s.name for s in specs] == ["shop-source"]
    config = specs[0].config
    assert config["database.password"] == "${env:HW_PG_PASSWORD}"
    assert config["name"] == "shop-source"
    assert [k for k, v in config.items() if "${" in v] == ["database.password"]


def test_safe_config_masks_the_password() -> None:
    spec = load_specs(SPECS_DIR, ENV)[0]
    assert spec.safe_config()["database.password"] == "**********"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hunter2-hunter2", "holds a secret in clear"),
        ("${HW_PG_PASSWORD}", "write ${env:HW_PG_PASSWORD}"),
        ("${vault:secret/db:password}", "unknown config provider 'vault'"),
        ("${env:HW_OTHER_PASSWORD}", "${env:HW_OTHER_PASSWORD} is not a secret Connect is given"),
    ],
)
def test_a_secret_is_only_ever_a_reference_connect_can_resolve(value: str, message: str) -> None:
    text = f"name: role\nconfig: {{connector.class: X, database.password: '{value}'}}"
    env = {**ENV, "HW_PG_PASSWORD": "s3cret-value"}
    with pytest.raises(SpecError) as err:
        parse_spec(Path("role.yaml"), text, env, secret_names={"HW_PG_PASSWORD"})
    assert "config.database.password" in str(err.value)
    assert message in str(err.value)
    assert "s3cret-value" not in str(err.value)


def test_a_file_reference_is_kept_for_connect() -> None:
    text = "name: role\nconfig: {connector.class: X, api.token: '${file:/run/s.properties:t}'}"
    spec = parse_spec(Path("role.yaml"), text, ENV, secret_names=set())
    assert spec.config["api.token"] == "${file:/run/s.properties:t}"


def _parse(text: str, name: str = "role") -> None:
    parse_spec(Path(f"{name}.yaml"), text, ENV)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: role\nconfig: [1]", "field `config` must be a non-empty mapping"),
        ("name: other\nconfig: {connector.class: X}", "is 'other' but the file is named 'role'"),
        ("name: Role_1\nconfig: {connector.class: X}", "field `name` must be lower-case"),
        ("name: role\nconfig: {a: b}", "config.connector.class is required"),
        ("name: role\nconfig: {connector.class: X, a: [1]}", "config.a: must be a string"),
        ("name: role\nconfig: {connector.class: X}\nextra: 1", "unknown top-level field(s) extra"),
        ("name: role\nconfig: {connector.class: '${NOPE}'}", "variable ${NOPE} is not set"),
        ("name: role\nconfig: {a: [", "not valid YAML"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        _parse(text)
    assert message in str(err.value)


def test_scalars_become_strings() -> None:
    spec = parse_spec(
        Path("role.yaml"), "name: role\nconfig: {connector.class: X, n: 3, b: true}", ENV
    )
    assert spec.config["n"] == "3"
    assert spec.config["b"] == "true"


def test_unknown_spec_name_lists_known_ones() -> None:
    with pytest.raises(SpecError, match="known: shop-source"):
        load_specs(SPECS_DIR, ENV, ["nope"])


def test_a_redacted_record_names_the_secret_by_reference() -> None:
    import json

    from connectors.purge import redacted

    record = json.dumps(
        {"properties": {"database.password": "s3cret-value", "jaas": 'password="s3cret-value"'}}
    ).encode()
    out = json.loads(redacted(record, {"HW_PG_PASSWORD": "s3cret-value", "?0": "unused"}))
    assert out["properties"]["database.password"] == "${env:HW_PG_PASSWORD}"
    assert out["properties"]["jaas"] == 'password="${env:HW_PG_PASSWORD}"'
    masked_out = redacted(record, {"?0": "s3cret-value"})
    assert b"s3cret-value" not in masked_out and b"**********" in masked_out
