"""IRSA / web identity: with AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (and the token's mount) on main,
which Elyra's COS auth supports, `elyra-log` gets them too and mirrors with temporary credentials.

The STS is the real one of SeaweedFS (`start_s3(iam_config=...)`), verifying tokens signed by a stand-in
OIDC issuer on 127.0.0.1 (tests/support/oidc.py), as AWS STS verifies EKS's service-account tokens.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest

from elyra_sidecar import contract
from elyra_sidecar.sidecar._mirror import MAX_TOKEN_BYTES, read_token
from elyra_sidecar.transformer import transform
from elyra_sidecar.webhook._admission import admit_pod
from tests.helpers import FIXTURES, load_fixture, patched
from tests.support.oidc import OidcIssuer, iam_config
from tests.support.procs import SidecarProcess, wait_for
from tests.support.s3 import start_s3
from tests.test_pod_mode import NS_OPTED_IN, container, load, review

BUCKET = "irsa-logs"
ROLE_ARN = "arn:aws:iam::123456789012:role/elyra-pipelines"
TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"  # noqa: S105 - a path, not a secret
#: What EKS's pod identity webhook adds to a container of a Pod whose ServiceAccount names a role.
IRSA_ENV = [
    {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
    {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
    {"name": "AWS_REGION", "value": "eu-west-1"},
    {"name": "AWS_ROLE_ARN", "value": ROLE_ARN},
    {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": f"{TOKEN_DIR}/token"},
]
IRSA_MOUNT = {"name": "aws-iam-token", "mountPath": TOKEN_DIR, "readOnly": True}
IRSA_VOLUME = {
    "name": "aws-iam-token",
    "projected": {
        "sources": [
            {
                "serviceAccountToken": {
                    "audience": "sts.amazonaws.com",
                    "expirationSeconds": 86400,
                    "path": "token",
                }
            }
        ]
    },
}


@pytest.fixture(scope="module")
def sts():
    """SeaweedFS with its STS trusting the stand-in issuer; the bucket made with the static keys."""
    issuer = OidcIssuer()
    directory = Path(tempfile.mkdtemp(prefix="elyra-sidecar-irsa-"))
    server = start_s3(iam_config=iam_config(directory / "iam.json", issuer, ROLE_ARN))
    try:
        server.make_bucket(BUCKET)
        yield server, issuer
    finally:
        server.stop()
        issuer.close()
        shutil.rmtree(directory, ignore_errors=True)


def _irsa_sidecar(server, log_dir: Path, token_file: Path, key: str) -> SidecarProcess:
    return SidecarProcess(
        "--dir",
        str(log_dir),
        "--file",
        "a.log",
        "--endpoint",
        server.endpoint,
        "--bucket",
        BUCKET,
        "--key",
        key,
        "--upload-interval",
        "0.2",
        "--shutdown-deadline",
        "5",
        env={
            "AWS_ROLE_ARN": ROLE_ARN,
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "AWS_ENDPOINT_URL_STS": server.endpoint,
        },
    )


@contextlib.contextmanager
def _ended(sc: SidecarProcess) -> Iterator[None]:
    """The sidecar is gone when the test is, whatever failed."""
    try:
        yield
    finally:
        if sc.proc.poll() is None:
            sc.proc.kill()
            sc.proc.wait(timeout=30)


class TestMirrorWithWebIdentity:
    def test_the_log_is_mirrored_with_temporary_credentials(self, sts, tmp_path):
        """No keys, a role and a token: the sidecar assumes the role and mirrors the whole log (main
        mirrored nothing: `mirror_disabled`). The token never appears in its diagnostics."""
        server, issuer = sts
        token = issuer.token()
        (tmp_path / "token").write_text(token)
        (tmp_path / "logs").mkdir()
        log = tmp_path / "logs" / "a.log"
        content = b"".join(b"line %d of a step run under a role\n" % i for i in range(200))
        log.write_bytes(content[:1000])
        sc = _irsa_sidecar(server, tmp_path / "logs", tmp_path / "token", "irsa/a.log")
        with _ended(sc):
            sc.wait_started()
            assert wait_for(lambda: server.get(BUCKET, "irsa/a.log") == content[:1000], timeout=30), sc.err
            with log.open("ab") as handle:
                handle.write(content[1000:])
            rc, _ = sc.terminate()
        assert rc == 0
        assert server.get(BUCKET, "irsa/a.log") == content
        assert "mirror_disabled" not in sc.err and "upload_failed" not in sc.err
        assert token not in sc.err and token.split(".")[2] not in sc.err
        assert issuer.requests >= 1  # the STS verified the token against the issuer's key

    def test_a_token_the_issuer_did_not_sign_mirrors_nothing(self, sts, tmp_path):
        """A forged token: STS refuses it; `upload_failed` by class only (minio's message holds the token
        in the request URL), exit 0, nothing written."""
        server, issuer = sts
        token = issuer.token(key=OidcIssuer.other_key())
        (tmp_path / "token").write_text(token)
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "a.log").write_bytes(b"secret-free line\n")
        sc = _irsa_sidecar(server, tmp_path / "logs", tmp_path / "token", "irsa/forged.log")
        with _ended(sc):
            sc.wait_started()
            assert wait_for(lambda: "upload_failed" in sc.err, timeout=30), sc.err
            rc, _ = sc.terminate()
        assert rc == 0
        assert server.get(BUCKET, "irsa/forged.log") is None
        assert token not in sc.err and token.split(".")[2] not in sc.err and "WebIdentityToken" not in sc.err

    def test_keys_win_over_web_identity_as_in_elyra(self, monkeypatch):
        """Both present: the keys, as Elyra's bootstrapper chooses (EnvAWSProvider before IamAwsProvider)."""
        from elyra_sidecar.sidecar._mirror import make_client

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
        monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent")
        assert type(make_client("http://127.0.0.1:1")._provider).__name__ == "EnvAWSProvider"
        assert type(make_client("http://127.0.0.1:1", web_identity=True)._provider).__name__ == (
            "WebIdentityProvider"
        )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "https://sts.amazonaws.com"),
        ({"AWS_REGION": "eu-west-1"}, "https://sts.eu-west-1.amazonaws.com"),
        ({"AWS_REGION": "cn-north-1"}, "https://sts.cn-north-1.amazonaws.com.cn"),
        ({"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9"}, "http://127.0.0.1:9"),
    ],
)
def test_sts_endpoint_as_minio_chooses_it(monkeypatch, env, expected):
    from elyra_sidecar.sidecar._mirror import sts_endpoint

    for name in ("AWS_REGION", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert sts_endpoint() == expected


def _irsa_main(main: dict) -> None:
    """main as EKS's pod identity webhook leaves it, with no keys."""
    main["env"] = [e for e in main.get("env") or [] if e["name"] not in contract.CREDENTIAL_ENV]
    main["env"] += copy.deepcopy(IRSA_ENV)
    main.setdefault("volumeMounts", []).append(dict(IRSA_MOUNT))


class TestTheSidecarGetsTheRoleAndToken:
    def test_workflow_mode(self):
        workflow = load_fixture(FIXTURES / "elyra-4.0.0-three-node-cos-secret.yaml")
        template = next(t for t in workflow["spec"]["templates"] if t["name"] == "run-a-file")
        _irsa_main(template["container"])
        workflow["spec"].setdefault("volumes", []).append(copy.deepcopy(IRSA_VOLUME))
        out = transform(workflow).workflow
        template = next(t for t in out["spec"]["templates"] if t["name"] == "run-a-file")
        (sidecar,) = template["sidecars"]
        assert sidecar["env"] == IRSA_ENV
        assert IRSA_MOUNT in sidecar["volumeMounts"]
        assert all(m.get("readOnly") for m in sidecar["volumeMounts"])

    def test_pod_mode(self):
        pod = load("pod-2.17-elyra-step")
        _irsa_main(container(pod, "main"))
        pod["spec"]["volumes"].append(copy.deepcopy(IRSA_VOLUME))
        outcome = admit_pod(review(pod), NS_OPTED_IN)
        result = patched(pod, outcome.review["response"])
        side = container(result, "elyra-log")
        assert side["env"] == IRSA_ENV
        assert IRSA_MOUNT in side["volumeMounts"]
        assert all(m.get("readOnly") for m in side["volumeMounts"])
        warnings = outcome.review["response"].get("warnings") or []
        assert not any("not mirrored" in w for w in warnings), warnings
        kubernetes_validate.validate(result, "1.30", strict=True)

    def test_only_with_both_entries(self):
        """A role without a token file (or the reverse) is not web identity: nothing of it is copied."""
        pod = load("pod-2.17-elyra-step")
        main = container(pod, "main")
        main["env"] = [*(main.get("env") or []), {"name": "AWS_ROLE_ARN", "value": ROLE_ARN}]
        result = patched(pod, admit_pod(review(pod), NS_OPTED_IN).review["response"])
        names = [e["name"] for e in container(result, "elyra-log").get("env") or []]
        assert "AWS_ROLE_ARN" not in names

    def test_the_token_mount_must_hold_the_file(self):
        """Only the mount whose directory holds the token file is added, never main's other mounts."""
        pod = load("pod-2.17-elyra-step")
        _irsa_main(container(pod, "main"))
        pod["spec"]["volumes"].append(copy.deepcopy(IRSA_VOLUME))
        before = {m["mountPath"] for m in container(pod, "main")["volumeMounts"]}
        result = patched(pod, admit_pod(review(pod), NS_OPTED_IN).review["response"])
        added = {m["mountPath"] for m in container(result, "elyra-log")["volumeMounts"]} & before
        assert TOKEN_DIR in added
        assert added <= {TOKEN_DIR, "/var/run/argo"}


class TestTheTokenFileIsBounded:
    """AWS_WEB_IDENTITY_TOKEN_FILE is the author's: the sidecar reads only a small regular file there."""

    def test_a_token_through_a_link(self, tmp_path):
        """The kubelet's projected token is a link into its ..data directory: followed, read, stripped."""
        (tmp_path / "real").write_text("eyJ.token.sig\n")
        (tmp_path / "token").symlink_to(tmp_path / "real")
        assert read_token(str(tmp_path / "token")) == "eyJ.token.sig"

    def test_a_fifo_is_refused_without_blocking(self, tmp_path):
        """A FIFO nobody writes to would hang the upload thread: refused at once."""
        fifo = tmp_path / "token"
        os.mkfifo(fifo)
        with pytest.raises(OSError, match="not a regular file"):
            read_token(str(fifo))

    def test_a_device_is_never_read(self):
        """/dev/zero would be read without end: refused before any read."""
        with pytest.raises(OSError, match="not a regular file"):
            read_token("/dev/zero")

    def test_an_oversized_file_is_refused(self, tmp_path):
        """A file over MAX_TOKEN_BYTES is not a token: refused, at most one byte over it read."""
        big = tmp_path / "token"
        big.write_bytes(b"x" * (MAX_TOKEN_BYTES + 1))
        with pytest.raises(OSError, match="not a token"):
            read_token(str(big))
        big.write_bytes(b"x" * MAX_TOKEN_BYTES)
        assert len(read_token(str(big))) == MAX_TOKEN_BYTES
