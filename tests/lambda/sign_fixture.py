#!/usr/bin/env python3
"""Writes the boto3-signed requests that `host/src/api/sigv4.rs` verifies in its unit tests.

The requests are made by boto3's own `lambda` client, exactly as an SDK user makes them, with the
clock frozen: a `before-send` handler captures each request as it would go on the wire (method,
URL as sent, headers, body) and answers it with a canned response, so nothing leaves the process.

    python3 tests/lambda/sign_fixture.py   # rewrites host/src/api/sigv4_fixtures/*.json

The credentials are a made-up tenant key in the host's shape: access key id `key_<id>`, secret
access key the whole `aeg_<id>_<secret>` API key.
"""

import datetime
import json
import pathlib
import urllib.parse
import uuid

import boto3
import botocore.auth
from botocore.awsrequest import AWSResponse

ACCESS_KEY_ID = "key_0123456789abcdef"
SECRET_ACCESS_KEY = "aeg_0123456789abcdef_" + "0123456789abcdef" * 4
REGION = "us-east-1"
FROZEN = datetime.datetime(2026, 12, 1, 12, 36, 0, tzinfo=datetime.timezone.utc)
OUT = pathlib.Path(__file__).resolve().parents[2] / "host/src/api/sigv4_fixtures"


def main() -> None:
    botocore.auth.get_current_datetime = lambda *args, **kwargs: FROZEN
    # The canonical request botocore signed, kept beside each request for the reader (and the
    # Rust test compares its own with it).
    canonical = []
    signer_canonical_request = botocore.auth.SigV4Auth.canonical_request

    def recording(self, request):
        text = signer_canonical_request(self, request)
        canonical.append(text)
        return text

    botocore.auth.SigV4Auth.canonical_request = recording
    client = boto3.client(
        "lambda",
        endpoint_url="http://127.0.0.1:1",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    captured = []

    def capture(request, **_):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = [
            [k, v if isinstance(v, str) else v.decode()] for k, v in request.headers.items()
        ]
        # The HTTP client adds `Host` when it sends; the signer signed the URL's host:port.
        headers.insert(0, ["Host", urllib.parse.urlsplit(request.url).netloc])
        captured.append(
            {
                "method": request.method,
                "url": request.url,
                "headers": headers,
                "body": body.decode(),
                "canonical_request": canonical[-1],
            }
        )
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw(b"{}"))

    client.meta.events.register("before-send.lambda.*", capture)
    # Fixed invocation ids (unsigned headers), so a rerun rewrites the same files.
    ids = iter(uuid.UUID(int=n) for n in range(1, 100))
    uuid.uuid4 = lambda: next(ids)

    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo:1/durable-execution/n1/ex_0123"
    client.get_durable_execution_history(
        DurableExecutionArn=arn, IncludeExecutionData=True, MaxItems=10
    )
    client.invoke(
        FunctionName="echo",
        Qualifier="$LATEST",
        DurableExecutionName="n1",
        Payload=json.dumps({"message": "hello, world"}).encode(),
    )

    names = ["get_durable_execution_history", "invoke"]
    for name, request in zip(names, captured, strict=True):
        fixture = {
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "time": FROZEN.strftime("%Y%m%dT%H%M%SZ"),
            **request,
        }
        path = OUT / f"boto3_{name}.json"
        path.write_text(json.dumps(fixture, indent=2) + "\n")
        print(f"wrote {path.relative_to(OUT.parents[3])}: {request['method']} {request['url']}")


class _Raw:
    """A response stream botocore can read once."""

    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


if __name__ == "__main__":
    main()
