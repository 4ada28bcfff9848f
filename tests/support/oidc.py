"""A stand-in OIDC issuer on 127.0.0.1 for IRSA tests: what EKS's service-account issuer is to AWS STS.

It serves its signing key as a JWKS document and signs service-account-like tokens (RS256), so a real STS,
SeaweedFS's (`iam_config()` below, `start_s3(iam_config=...)`), can verify them and answer
AssumeRoleWithWebIdentity with temporary credentials. Minimal: no discovery beyond the JWKS, one key.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: The audience EKS projects into the token (`serviceAccountToken.audience`).
AUDIENCE = "sts.amazonaws.com"
PROVIDER = "cluster-oidc"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


class OidcIssuer:
    """JWKS at `{issuer}/keys` on a free 127.0.0.1 port; `token()` signs a JWT with the served key."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self._jwks = json.dumps(
            {
                "keys": [
                    {
                        "kty": "RSA",
                        "kid": "k1",
                        "use": "sig",
                        "alg": "RS256",
                        "n": _b64(_uint(numbers.n)),
                        "e": _b64(_uint(numbers.e)),
                    }
                ]
            }
        ).encode()
        self.requests = 0
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(issuer._jwks)))
                self.end_headers()
                self.wfile.write(issuer._jwks)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def token(self, *, subject: str = "system:serviceaccount:team-a:pipeline-runner", key: Any = None) -> str:
        """A service-account token for `subject`, valid for an hour; `key` signs it instead (a forgery)."""
        now = int(time.time())
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 3600}
        body = _b64(json.dumps(claims).encode())
        signer = key or self._key
        signature = signer.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{body}.{_b64(signature)}"

    @staticmethod
    def other_key() -> Any:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def iam_config(path: Path, issuer: OidcIssuer, role_arn: str) -> Path:
    """SeaweedFS's advanced IAM file: its STS trusts `issuer`, and `role_arn` may do anything in S3."""
    config = {
        "sts": {
            "tokenDuration": "1h",
            "maxSessionLength": "12h",
            "issuer": "seaweedfs-sts",
            "signingKey": base64.b64encode(os.urandom(32)).decode(),
        },
        "providers": [
            {
                "name": PROVIDER,
                "type": "oidc",
                "enabled": True,
                "config": {"issuer": issuer.url, "clientId": AUDIENCE, "jwksUri": f"{issuer.url}/keys"},
            }
        ],
        "policy": {"defaultEffect": "Deny", "storeType": "memory"},
        "roles": [
            {
                "roleName": role_arn.rsplit("/", 1)[-1],
                "roleArn": role_arn,
                "trustPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Federated": PROVIDER},
                            "Action": ["sts:AssumeRoleWithWebIdentity"],
                        }
                    ],
                },
                "attachedPolicies": ["log-writer"],
            }
        ],
        "policies": [
            {
                "name": "log-writer",
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]},
                        {"Effect": "Allow", "Action": ["sts:ValidateSession"], "Resource": ["*"]},
                    ],
                },
            }
        ],
    }
    path.write_text(json.dumps(config))
    return path
