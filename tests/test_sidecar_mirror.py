"""Mirroring to a real S3 server (SeaweedFS on 127.0.0.1): the object equals the file during and after."""

from __future__ import annotations

import io
import json
import os

import pytest

from tests.support.procs import CountingProxy, SidecarProcess, free_port, start_writer, wait_for
from tests.support.s3 import start_s3

BUCKET = "elyra-bucket"


@pytest.fixture(scope="module")
def bucket(s3):
    """The module's own S3 server on free ports (conftest `s3`) with the bucket made."""
    s3.make_bucket(BUCKET)
    return s3


def mirrored(server, directory, key, *extra, env=None, endpoint=None):
    return SidecarProcess(
        "--dir",
        str(directory),
        "--file",
        "a.log",
        "--endpoint",
        endpoint or server.endpoint,
        "--bucket",
        BUCKET,
        "--key",
        key,
        "--upload-interval",
        "0.2",
        *extra,
        env=server.env if env is None else env,
    )


class TestMirror:
    @pytest.mark.slow
    def test_object_equals_file_during_and_after(self, bucket, tmp_path):
        """While running, the object catches up with the file; after SIGTERM it equals the final file."""
        key = "my/project/run-1/a.log"
        path = tmp_path / "a.log"
        sc = mirrored(bucket, tmp_path, key)
        sc.wait_started()
        path.write_bytes(b"epoch 1\n")
        assert wait_for(lambda: bucket.get(BUCKET, key) == b"epoch 1\n", timeout=10)
        assert sc.proc.poll() is None  # still running: this is the during-the-run copy
        with path.open("ab") as f:
            f.write(b"epoch 2\nno newline yet")
        assert wait_for(lambda: bucket.get(BUCKET, key) == path.read_bytes(), timeout=10)
        with path.open("ab") as f:
            f.write(b" - done\n")
        rc, elapsed = sc.terminate()
        assert rc == 0 and elapsed < 10
        assert bucket.get(BUCKET, key) == path.read_bytes() == sc.out

    def test_every_upload_is_a_prefix_of_the_file(self, bucket, tmp_path):
        """Objects seen while a burst is written are always prefixes of the file (never torn)."""
        key = "prefix/a.log"
        path = tmp_path / "a.log"
        sc = mirrored(bucket, tmp_path, key)
        sc.wait_started()
        writer = start_writer(path, "slow", "300", "0.005")
        seen = []
        while writer.poll() is None:
            obj = bucket.get(BUCKET, key)
            if obj:
                seen.append(obj)
        sc.terminate()
        final = path.read_bytes()
        assert len(seen) >= 2 and len({len(s) for s in seen}) >= 2
        assert all(final.startswith(s) for s in seen)
        assert bucket.get(BUCKET, key) == final

    @pytest.mark.slow
    def test_storage_unreachable_still_exits_zero_in_time(self, tmp_path):
        """No server on the endpoint: stdout is still exact; exit 0 within the shutdown deadline."""
        port = free_port()
        (tmp_path / "a.log").write_bytes(b"still streamed\n")
        sc = SidecarProcess(
            "--dir",
            str(tmp_path),
            "--file",
            "a.log",
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--bucket",
            BUCKET,
            "--key",
            "k.log",
            "--upload-interval",
            "0.2",
            "--shutdown-deadline",
            "2",
            env={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
        )
        assert wait_for(lambda: sc.out == b"still streamed\n")
        assert wait_for(lambda: '"upload_failed"' in sc.err, timeout=10)
        rc, elapsed = sc.terminate()
        assert rc == 0 and elapsed < 2.5
        assert sc.out == b"still streamed\n"

    def test_bad_credentials_reported_without_the_secret(self, bucket, tmp_path):
        """Wrong secret: upload_failed with the S3 error code, the secret never printed, exit 0."""
        secret = "very-secret-value-123"  # noqa: S105 - a wrong secret, to check it is never printed
        (tmp_path / "a.log").write_bytes(b"x\n")
        sc = mirrored(
            bucket,
            tmp_path,
            "bad/a.log",
            "--shutdown-deadline",
            "3",
            env={"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": secret},
        )
        assert wait_for(lambda: '"upload_failed"' in sc.err, timeout=10)
        rc, _ = sc.terminate()
        assert rc == 0
        assert "SignatureDoesNotMatch" in sc.err or "AccessDenied" in sc.err
        assert secret not in sc.err and secret not in sc.out.decode()
        assert bucket.get(BUCKET, "bad/a.log") is None

    def test_missing_credentials_disable_mirroring_with_a_reason(self, tmp_path):
        """Without AWS_* in the env the sidecar still streams, and says why it does not mirror."""
        (tmp_path / "a.log").write_bytes(b"y\n")
        sc = SidecarProcess(
            "--dir",
            str(tmp_path),
            "--file",
            "a.log",
            "--endpoint",
            "http://127.0.0.1:9",
            "--bucket",
            BUCKET,
            "--key",
            "k",
            env={},
        )
        assert wait_for(lambda: sc.out == b"y\n")
        assert sc.terminate()[0] == 0
        assert '"mirror_disabled"' in sc.err and "AWS_ACCESS_KEY_ID" in sc.err


def summary(err: str) -> dict[str, object]:
    (line,) = [x for x in err.splitlines() if '"sidecar_stopped"' in x]
    record: dict[str, object] = json.loads(line)
    return record


class TestMirrorCost:
    def test_large_file_without_connection_pool_warnings(self, bucket, tmp_path):
        """A 12 MiB log (a multipart upload) never makes urllib3 warn that its pool is full."""
        key = "big/a.log"
        path = tmp_path / "a.log"
        path.write_bytes(os.urandom(6 << 20).hex().encode())
        sc = mirrored(bucket, tmp_path, key)
        assert wait_for(lambda: bucket.get(BUCKET, key) == path.read_bytes(), timeout=30), sc.err
        assert sc.terminate()[0] == 0
        assert "pool is full" not in sc.err.lower()

    def test_appends_send_only_the_appended_bytes(self, bucket, tmp_path):
        """A log past 5 MiB growing 1 MiB at a time: bytes sent stay near the file's size, not its square."""
        key = "grow/a.log"
        path = tmp_path / "a.log"
        path.write_bytes(b"start\n" + os.urandom(3 << 20).hex().encode() + b"\n")
        proxy = CountingProxy(bucket.port)
        try:
            sc = mirrored(bucket, tmp_path, key, env=bucket.env, endpoint=proxy.endpoint)
            assert wait_for(lambda: bucket.get(BUCKET, key) == path.read_bytes(), timeout=30), sc.err
            for i in range(10):
                with path.open("ab") as f:
                    f.write(b"step %d " % i + os.urandom(1 << 19).hex().encode() + b"\n")
                # Each step is uploaded before the next (the upload interval is 0.2 s).
                assert wait_for(lambda: bucket.get(BUCKET, key) == path.read_bytes(), timeout=30), sc.err
            assert sc.terminate()[0] == 0
        finally:
            proxy.close()
        size = path.stat().st_size
        assert bucket.get(BUCKET, key) == path.read_bytes()
        # Re-uploading the whole file each time would send 6+7+...+16 MiB = 121 MiB for this 16 MiB file.
        assert proxy.sent < 1.5 * size, (proxy.sent, size)
        stopped = summary(sc.err)
        assert stopped["uploads"] == 11 and stopped["uploaded_bytes"] == size

    def test_object_rewritten_by_someone_else_is_uploaded_whole(self, bucket, tmp_path):
        """The key overwritten by another writer (the bootstrapper's own upload): no append onto it."""
        key = "other-writer/a.log"
        path = tmp_path / "a.log"
        path.write_bytes(os.urandom(3 << 20).hex().encode() + b"\n")
        sc = mirrored(bucket, tmp_path, key)
        assert wait_for(lambda: bucket.get(BUCKET, key) == path.read_bytes(), timeout=30), sc.err
        bucket.client().put_object(BUCKET, key, io.BytesIO(b"other\n"), 6)
        with path.open("ab") as f:
            f.write(b"appended\n")
        assert wait_for(lambda: bucket.get(BUCKET, key) == path.read_bytes(), timeout=30), sc.err
        assert sc.terminate()[0] == 0
        assert bucket.get(BUCKET, key) == path.read_bytes()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A second S3 server that also serves https, with a certificate from a private CA."""
    import trustme

    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    server = start_s3(tls=(str(d / "cert.pem"), str(d / "key.pem")))
    server.make_bucket(BUCKET)
    yield server, d / "ca.pem"
    server.stop()


class TestHttps:
    def test_https_endpoint_with_a_private_ca(self, tls_server, tmp_path):
        """https endpoint signed by a private CA, trusted through --ca-bundle: the object equals the file."""
        server, ca = tls_server
        assert server.https_endpoint
        (tmp_path / "a.log").write_bytes(b"over tls\n")
        sc = SidecarProcess(
            "--dir",
            str(tmp_path),
            "--file",
            "a.log",
            "--endpoint",
            server.https_endpoint,
            "--bucket",
            BUCKET,
            "--key",
            "tls/a.log",
            "--ca-bundle",
            str(ca),
            "--upload-interval",
            "0.2",
            env=server.env,
        )
        assert wait_for(lambda: server.get(BUCKET, "tls/a.log") == b"over tls\n", timeout=10), sc.err
        assert sc.terminate()[0] == 0

    def test_untrusted_certificate_is_refused_not_fatal(self, tls_server, tmp_path):
        """Without the CA bundle the certificate is not trusted: upload_failed, still streams, exit 0."""
        server, _ = tls_server
        (tmp_path / "a.log").write_bytes(b"x\n")
        sc = SidecarProcess(
            "--dir",
            str(tmp_path),
            "--file",
            "a.log",
            "--endpoint",
            server.https_endpoint,
            "--bucket",
            BUCKET,
            "--key",
            "tls/untrusted.log",
            "--upload-interval",
            "0.2",
            "--shutdown-deadline",
            "3",
            env=server.env,
        )
        assert wait_for(lambda: '"upload_failed"' in sc.err, timeout=10)
        rc, _ = sc.terminate()
        assert rc == 0 and sc.out == b"x\n"
        assert server.get(BUCKET, "tls/untrusted.log") is None
