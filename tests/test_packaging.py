"""The sidecar image and the transformer's sidecar spec agree (no container engine here to build it)."""

from __future__ import annotations

import re

from elyra_sidecar.transformer import Config
from tests.helpers import ROOT


class TestDockerfile:
    def test_user_matches_the_security_context(self):
        """The image's numeric USER is the runAsUser/runAsGroup the transformer sets."""
        text = (ROOT / "sidecar" / "Dockerfile").read_text()
        users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", text, re.MULTILINE)
        ctx = Config().sidecar.security_context
        assert users == [(str(ctx["runAsUser"]), str(ctx["runAsGroup"]))]

    def test_entrypoint_is_the_sidecar_command(self):
        """ENTRYPOINT equals the command the transformer writes (explicit, as emissary needs)."""
        text = (ROOT / "sidecar" / "Dockerfile").read_text()
        (entry,) = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.MULTILINE)
        assert entry == '["' + '", "'.join(Config().sidecar.command) + '"]'


class TestLicense:
    def test_the_license_file_is_apache_2_and_packaged(self):
        """LICENSE holds the Apache License 2.0 that pyproject declares, and the wheel ships it."""
        import tomllib

        text = (ROOT / "LICENSE").read_text()
        assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
        assert "END OF TERMS AND CONDITIONS" in text
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert project["license"] == "Apache-2.0"
        assert project["license-files"] == ["LICENSE"]
