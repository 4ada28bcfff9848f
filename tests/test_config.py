"""The config file: defaults, validation errors that name the key, docs in step with the code."""

from __future__ import annotations

import dataclasses

import pytest

from elyra_sidecar.transformer import Config, ConfigError, config_from_mapping, load_config
from elyra_sidecar.transformer._config import config_to_mapping
from tests.helpers import ROOT


def _keys(data, prefix=""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("resources", "security_context"):
            yield from _keys(value, name + ".")
        else:
            yield name


class TestConfig:
    def test_empty_file_means_defaults(self, tmp_path):
        """An empty file and no file both give the defaults."""
        path = tmp_path / "c.yaml"
        path.write_text("")
        assert load_config(path) == Config() == load_config(None)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"sidecar": {"image": 3}}, "sidecar.image: must be a non-empty string"),
            ({"sidecar": {"name": "Bad_Name"}}, "sidecar.name: 'Bad_Name' is not a valid container name"),
            ({"sidecar": {"name": "wait"}}, "reserved by Argo"),
            ({"work_dir": {"mount_path": "rel"}}, "work_dir.mount_path: must be an absolute path"),
            ({"artifacts": {"wildcards": "glob"}}, "artifacts.wildcards: must be 'directory' or 'skip'"),
            ({"unbuffered": "yes"}, "unbuffered: must be true or false"),
            ({"sidecar": {"shutdown_deadline_seconds": 45}}, "under Argo's 30 s grace"),
            ({"lineage": {"mount_path": "/elyra-sidecar/work/in"}}, "lineage.mount_path: must lie outside"),
            ({"nope": 1}, "nope: unknown key"),
            (
                {"sidecar": {"shutdown_deadline_seconds": float("nan")}},
                "shutdown_deadline_seconds: must be a finite",
            ),
            (
                {"sidecar": {"upload_interval_seconds": float("inf")}},
                "upload_interval_seconds: must be a finite",
            ),
            ({"webhook": {"drain_seconds": float("-inf")}}, "webhook.drain_seconds: must be a finite"),
            ({"work_dir": {"mount_path": "/a/../.."}}, "work_dir.mount_path: must be a plain absolute path"),
            ({"work_dir": {"mount_path": "/a/./b"}}, "did you mean '/a/b'"),
            ({"lineage": {"mount_path": "//in"}}, "lineage.mount_path: must be a plain absolute path"),
            ([1], "must be a mapping"),
        ],
    )
    def test_errors_name_the_key(self, data, message):
        """Each invalid value is refused with the key's dotted path."""
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            config_from_mapping(data)

    def test_yaml_errors_carry_line_numbers(self, tmp_path):
        """Broken YAML in the config file says where."""
        path = tmp_path / "c.yaml"
        path.write_text("sidecar:\n  image: [\n")
        with pytest.raises(ConfigError, match=r"c.yaml: not valid YAML \(line"):
            load_config(path)

    @pytest.mark.parametrize("value", [".nan", ".inf", "-.Inf"])
    def test_yaml_nan_and_infinity_are_refused(self, tmp_path, value):
        """`.nan` and `.inf` in the file (the sidecar would skip its final upload) name the key."""
        path = tmp_path / "c.yaml"
        path.write_text(f"sidecar:\n  shutdown_deadline_seconds: {value}\n")
        message = r"sidecar\.shutdown_deadline_seconds: must be a finite positive"
        with pytest.raises(ConfigError, match=message):
            load_config(path)

    def test_duplicate_keys_are_refused(self, tmp_path):
        """A key given twice names the key and lines, instead of the last one winning silently."""
        path = tmp_path / "c.yaml"
        path.write_text("sidecar:\n  mirror: false\n  mirror: true\n")
        with pytest.raises(
            ConfigError, match=r"c.yaml: line 3, column 3: duplicate key 'mirror' \(first at line 2\)"
        ):
            load_config(path)

    def test_every_key_is_documented(self):
        """docs/configuration.md mentions every key with its dotted path."""
        doc = (ROOT / "docs" / "configuration.md").read_text()
        missing = [k for k in _keys(config_to_mapping(Config())) if f"`{k}`" not in doc]
        assert missing == []

    def test_round_trip(self):
        """The full mapping of a config builds the same config."""
        config = config_from_mapping({"sidecar": {"mirror": False}, "lineage": {"enabled": True}})
        assert config_from_mapping(config_to_mapping(config)) == config
        assert dataclasses.replace(config, strict=True).strict


def test_example_config_is_the_defaults():
    """examples/config.yaml lists every key with its default."""
    assert load_config(ROOT / "examples" / "config.yaml") == Config()
