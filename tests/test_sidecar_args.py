"""The sidecar command line the transformer writes, run as the real sidecar process."""

from __future__ import annotations

from pathlib import Path

import pytest

from elyra_sidecar.transformer import config_from_mapping, transform
from tests.helpers import FIXTURES, load_fixture
from tests.support.procs import SidecarProcess, wait_for

NO_MIRROR = config_from_mapping({"sidecar": {"mirror": False}, "live": {"mode": "off"}})


def _sidecar_args(file_name: str) -> list[str]:
    """The elyra-log args for the 4.0.0 fixture's Python node with its script renamed `file_name`."""
    workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node.yaml")
    t = workflow["spec"]["templates"][0]
    t["container"]["args"][0] = t["container"]["args"][0].replace(
        "three-node/load_data.py", f"three-node/{file_name}"
    )
    (sidecar,) = transform(workflow, NO_MIRROR).workflow["spec"]["templates"][0]["sidecars"]
    return [str(a) for a in sidecar["args"]]


class TestOptionsWithValues:
    @pytest.mark.parametrize(("script", "log"), [("-x.py", "-x.log"), ("--help.py", "--help.log")])
    def test_a_log_named_like_an_option_is_followed(self, tmp_path: Path, script: str, log: str):
        """`--file=-x.log`: the real sidecar follows a log whose name starts with `-` (it exited 2 before)."""
        args = _sidecar_args(script)
        assert f"--file={log}" in args and all(a.startswith("--") and "=" in a for a in args)
        args = [f"--dir={tmp_path}" if a.startswith("--dir=") else a for a in args]
        sidecar = SidecarProcess(*args)
        try:
            sidecar.wait_started()
            (tmp_path / log).write_bytes(b"first line\n")
            assert wait_for(lambda: b"first line\n" in sidecar.out), sidecar.err
        finally:
            rc, _ = sidecar.terminate()
        assert rc == 0, sidecar.err
        assert sidecar.out == b"first line\n"
