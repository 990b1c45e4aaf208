"""Config validation: every broken config stops before any I/O, naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.config import load_config
from concord.errors import ConfigError
from concord.secrets import SecretRef

GOOD = """\
store_url: sqlite:///var/x.db
sources:
  erp:
    type: rest
    base_url: ${ERP_URL:-http://127.0.0.1:1}
    auth: {type: bearer, token: {env: ERP_TOKEN}}
    entities:
      orders: {path: /orders, mapping: m.yaml}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "m.yaml").write_text("direction: inbound\n")
    path = tmp_path / "concord.yaml"
    path.write_text(text)
    return path


def test_valid_config_resolves_env_defaults_and_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.sources["erp"].settings["base_url"] == "http://127.0.0.1:1"
    assert config.sources["erp"].name == "erp"
    assert config.resolve_path(config.sources["erp"].entities["orders"].mapping).is_file()


def test_inline_secret_is_refused_with_line_and_key(tmp_path: Path) -> None:
    text = GOOD.replace("token: {env: ERP_TOKEN}", "token: hunter2-secret")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    msg = str(info.value)
    assert "concord.yaml:6" in msg and "sources.erp.auth.token" in msg
    assert "hunter2" not in msg


def test_unknown_top_level_key_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"concord.yaml:9 'colour': unknown key 'colour'"):
        load_config(write(tmp_path, GOOD + "colour: blue\n"))


def test_missing_mapping_file_is_named(tmp_path: Path) -> None:
    text = GOOD.replace("mapping: m.yaml", "mapping: nope.yaml")
    with pytest.raises(ConfigError, match=r":8 'sources.erp.entities.orders.mapping'.*nope.yaml"):
        load_config(write(tmp_path, text))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"concord.yaml:3.*invalid YAML"):
        load_config(write(tmp_path, "sources:\n  erp: [\n  x: }\n"))


def test_unset_environment_variable_without_default_is_named(tmp_path: Path) -> None:
    text = GOOD.replace("${ERP_URL:-http://127.0.0.1:1}", "${CONCORD_UNSET_VAR_X}")
    with pytest.raises(ConfigError, match="CONCORD_UNSET_VAR_X is not set"):
        load_config(write(tmp_path, text))


def test_secret_reference_resolves_from_env_and_is_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from concord.redact import redact

    monkeypatch.setenv("MY_TOKEN", "s3cr3t-value-123")
    assert SecretRef(env="MY_TOKEN").resolve() == "s3cr3t-value-123"
    assert "s3cr3t" not in redact("calling with s3cr3t-value-123 now")


def test_unset_secret_names_the_reference_not_a_value() -> None:
    with pytest.raises(ConfigError, match="env CONCORD_NO_SUCH_SECRET is not set"):
        SecretRef(env="CONCORD_NO_SUCH_SECRET").resolve()


def test_airflow_connection_uri_in_env_serves_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ERP_API", "http://user:p%40ss@erp.example:443")
    assert SecretRef(connection="erp_api").resolve() == "p@ss"
    assert SecretRef(connection="erp_api", field="login").resolve() == "user"


def test_missing_person_mapping_is_named_before_any_io(tmp_path: Path) -> None:
    text = GOOD + (
        "targets:\n  crm:\n    type: hubspot\n    mapping: m.yaml\n"
        "    person_mapping: people.yaml\n"
    )
    with pytest.raises(ConfigError, match=r":13 'targets.crm.person_mapping'.*people.yaml"):
        load_config(write(tmp_path, text))


def test_missing_identity_overrides_file_is_named_before_any_io(tmp_path: Path) -> None:
    text = GOOD + "identity:\n  overrides: nope/overrides.yaml\n"
    with pytest.raises(ConfigError, match=r":10 'identity.overrides'.*nope/overrides.yaml"):
        load_config(write(tmp_path, text))


def test_a_misspelt_connector_setting_fails_as_the_config_loads_with_file_and_line(
    tmp_path: Path,
) -> None:
    text = GOOD.replace("    auth:", "    paginatr: {type: cursor}\n    auth:")
    expected = r"concord.yaml:6 'sources.erp.paginatr': unknown key 'paginatr'; did you mean"
    with pytest.raises(ConfigError, match=expected + r" 'paginator'\?"):
        load_config(write(tmp_path, text))


def test_a_bad_setting_of_a_later_source_or_a_target_fails_before_anything_runs(
    tmp_path: Path,
) -> None:
    second = (
        "  erp2:\n    type: soap\n    base_url: http://127.0.0.1:1\n"
        "    entities:\n      orders: {records_path: R.O, mapping: m.yaml}\n"
    )
    with pytest.raises(ConfigError, match=r":13 'sources.erp2.entities.orders.wsdl'.*needs a"):
        load_config(write(tmp_path, GOOD + second))
    target = "targets:\n  crm:\n    type: hubspot\n    mapping: m.yaml\n    objekt_type: x\n"
    with pytest.raises(ConfigError, match=r":13 'targets.crm.objekt_type'"):
        load_config(write(tmp_path, GOOD + target))


def test_an_unknown_connector_type_names_the_type_key(tmp_path: Path) -> None:
    text = GOOD.replace("type: rest", "type: graphql")
    with pytest.raises(ConfigError, match=r":4 'sources.erp.type'.*unknown source type 'graphql'"):
        load_config(write(tmp_path, text))


def test_a_disabled_source_is_not_checked_by_its_connector(tmp_path: Path) -> None:
    text = GOOD.replace("    auth:", "    enabled: false\n    paginatr: {type: cursor}\n    auth:")
    assert not load_config(write(tmp_path, text)).sources["erp"].enabled


def test_a_misspelt_top_level_key_is_named_with_a_did_you_mean(tmp_path: Path) -> None:
    text = GOOD.replace("store_url:", "stor_url:")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.message.endswith(
        "concord.yaml:1 'stor_url': unknown key 'stor_url'; did you mean 'store_url'?"
    )


def test_a_misspelt_key_core_reads_in_a_connector_section_is_suggested(tmp_path: Path) -> None:
    text = GOOD.replace("{path: /orders,", "{path: /orders, cursor_feld: x,")
    with pytest.raises(ConfigError, match=r"'sources\.erp\.entities\.orders\.cursor_feld'") as info:
        load_config(write(tmp_path, text))
    assert "did you mean 'cursor_field'?" in info.value.message


def test_a_wrong_type_is_said_in_words_with_file_line_and_key(tmp_path: Path) -> None:
    text = GOOD + "batch_size: many\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.message.endswith(
        "concord.yaml:9 'batch_size': expected a whole number, got 'many'"
    )
    assert "Input should" not in info.value.message


def test_a_misspelt_choice_gets_a_did_you_mean(tmp_path: Path) -> None:
    text = GOOD.replace("type: bearer", "type: beerer")
    with pytest.raises(ConfigError, match=r"concord.yaml:6 'sources.erp.auth'") as info:
        load_config(write(tmp_path, text))
    assert "unknown type 'beerer'" in info.value.message
    assert "did you mean 'bearer'?" in info.value.message


def test_an_unset_secret_names_the_config_file_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ERP_TOKEN", raising=False)
    load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError) as info:
        SecretRef(env="ERP_TOKEN").resolve()
    assert "concord.yaml:6 'sources.erp.auth.token'" in info.value.message
    assert "env ERP_TOKEN is not set" in info.value.message


def test_an_unsupported_store_url_is_named_before_any_driver_is_loaded(tmp_path: Path) -> None:
    text = GOOD.replace("sqlite:///var/x.db", "mysql://concord@db/concord")
    with pytest.raises(ConfigError, match=r"concord\.yaml:1 'store_url'") as info:
        load_config(write(tmp_path, text))
    assert "mysql is not supported" in info.value.message
    assert "sqlite:///" in info.value.message and "postgresql://" in info.value.message


def test_refusing_an_inline_password_keeps_every_word_of_the_message(tmp_path: Path) -> None:
    text = GOOD.replace("{type: bearer, token: {env: ERP_TOKEN}}", "{type: basic, password: pw1}")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "'sources.erp.auth.password': secrets must be references" in info.value.message
    assert "***" not in info.value.message and "pw1" not in info.value.message
