import base64

from headwater.secrets import (
    Leak,
    Reference,
    find_leaks,
    holds_clear_secret,
    masked,
    references,
    secret_env,
)


def test_masked_hides_secret_looking_keys() -> None:
    assert masked({"database.password": "x", "user": "u", "sasl.jaas.config": "m"}) == {
        "database.password": "**********",
        "user": "u",
        "sasl.jaas.config": "**********",
    }


def test_references_name_provider_path_and_key() -> None:
    assert references("${env:HW_PG_PASSWORD}") == [Reference("env", None, "HW_PG_PASSWORD")]
    assert references("${file:/run/secrets/db.properties:password}") == [
        Reference("file", "/run/secrets/db.properties", "password")
    ]
    assert references("${HW_PG_HOST}") == []


def test_a_secret_key_must_hold_a_reference() -> None:
    assert holds_clear_secret("database.password", "hunter2-hunter2")
    assert not holds_clear_secret("database.password", "${env:HW_PG_PASSWORD}")
    assert not holds_clear_secret("database.password", "")
    assert not holds_clear_secret("database.user", "headwater")
    # A JAAS line keeps its module and user in clear; only its password must be a reference.
    jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" '
    assert holds_clear_secret("producer.sasl.jaas.config", jaas + 'password="s3cret";')
    assert not holds_clear_secret(
        "producer.sasl.jaas.config", jaas + 'password="${env:HW_KAFKA_PASSWORD}";'
    )


def test_find_leaks_names_the_secret_and_its_form_never_the_value() -> None:
    secrets = {"HW_PG_PASSWORD": "pg-secret-value", "HW_SHORT_TOKEN": "abc"}
    data = b"log line password=pg-secret-value\n"
    assert find_leaks("connect.log", data, secrets) == [
        Leak("connect.log", "HW_PG_PASSWORD", "clear")
    ]
    encoded = base64.b64encode(b"pg-secret-value")
    assert find_leaks("topic", b"x" + encoded + b"y", secrets)[0].form == "base64"
    assert find_leaks("clean", b"nothing to see; abc", secrets) == []


def test_secret_env_takes_only_secret_names_with_a_value() -> None:
    environ = [
        ("HW_PG_PASSWORD", "p"),
        ("HW_CRM_DB_PASSWORD", "c"),
        ("HW_ES_PASSWORD", ""),
        ("HW_PG_HOST", "h"),
        ("PATH", "/bin"),
    ]
    assert secret_env(environ) == {"HW_PG_PASSWORD": "p", "HW_CRM_DB_PASSWORD": "c"}
