from pathlib import Path

import pytest

from sensorwatch.core.config import ConfigError, Settings, defaults_yaml, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_documented_defaults_file_is_current():
    assert (REPO / "config" / "sensorwatch.yaml").read_text() == defaults_yaml()


def test_documented_defaults_file_loads_to_defaults():
    assert load_settings(REPO / "config" / "sensorwatch.yaml", environ={}) == Settings()


def test_every_key_is_documented():
    from pydantic import BaseModel

    def walk(model, prefix=""):
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                yield from walk(value, f"{prefix}{name}.")
            elif not field.description:
                yield prefix + name

    assert list(walk(Settings())) == []


def test_unknown_key_in_file_is_rejected_by_name(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("job:\n  window_s: 10\n  seq_lenn: 8\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ={})
    assert "unknown key 'job.seq_lenn'" in str(exc.value)
    assert "did you mean 'seq_len'" in str(exc.value)


def test_unknown_section_is_rejected(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("kafak:\n  partitions: 2\n")
    with pytest.raises(ConfigError, match="unknown key 'kafak'"):
        load_settings(f, environ={})


def test_unknown_key_in_environment_is_rejected():
    with pytest.raises(ConfigError, match="unknown key 'serving.prot'"):
        load_settings(environ={"SENSORWATCH__SERVING__PROT": "1"})


def test_environment_overrides_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("job:\n  window_s: 10\nkafka:\n  partitions: 3\n")
    s = load_settings(f, environ={"SENSORWATCH__JOB__WINDOW_S": "2.5"})
    assert s.job.window_s == 2.5
    assert s.kafka.partitions == 3


def test_bad_value_names_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("kafka:\n  partitions: 0\n")
    with pytest.raises(ConfigError, match="kafka.partitions"):
        load_settings(f, environ={})


def test_device_features_take_the_jobs_order_and_each_feature_once():
    t = load_settings(overrides={"training": {"device_features": ["count", "values"]}}, environ={}).training
    assert t.device_features == ["values", "count"]
    for bad in ([], ["values", "values"], ["mean"]):
        with pytest.raises(ConfigError, match="device_features"):
            load_settings(overrides={"training": {"device_features": bad}}, environ={})


def test_sasl_needs_credentials():
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        load_settings(environ={"SENSORWATCH__KAFKA__SECURITY_PROTOCOL": "SASL_SSL"})


def test_secret_is_not_printed():
    s = load_settings(
        environ={
            "SENSORWATCH__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SENSORWATCH__KAFKA__SASL_MECHANISM": "PLAIN",
            "SENSORWATCH__KAFKA__SASL_USERNAME": "svc",
            "SENSORWATCH__KAFKA__SASL_PASSWORD": "hunter2-secret",
        }
    )
    assert s.kafka.sasl_password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in s.model_dump_json()


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", environ={})
