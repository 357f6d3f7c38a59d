#!/usr/bin/env python3
"""AWS's durable-execution conformance suite, run against a running Aegis host.

Starts nothing: give it the URL of a host without an admin key (any signature is accepted).
It uploads the conformance component (guest-workflows/conformance) under the function name
`conformance-<id>` of every requirement it has a handler for, then runs each of the suite's
requirements with AWS's own validator (`validate.validate_description`). Only what needs AWS
itself is stubbed: CloudFormation, with a map from the logical id to our function name, and
CloudWatch Logs, whose `FilterLogEvents` reads the execution's log from the host
(`GET /v1/executions/{id}/logs`). It prints a table per suite, the total `N/155` and one line
per failing requirement, and exits non-zero when N is below the figure in
tests/conformance/baseline.

    python3 tests/conformance/run.py --url http://127.0.0.1:8080

Needs `make conformance-deps` (the suite, boto3, pyyaml). `--only 1-1,2-3` runs some requirements.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLERS_SRC = ROOT / "guest-workflows" / "conformance" / "src" / "lib.rs"
DEFAULT_WASM = ROOT / "guest-workflows" / "target" / "wasm32-wasip2" / "release" / "conformance.wasm"
BASELINE = Path(__file__).resolve().parent / "baseline"
PREFIX = "conformance-"
SUITES = [
    "step",
    "wait",
    "child",
    "callback",
    "invoke",
    "wait_for_condition",
    "wait_for_callback",
    "parallel",
    "map",
    "plugin",
]
# Why a requirement has no handler yet: what the SDK or the host lacks to express it.
GAPS = {
}
# The targets of the chained invokes (5-x), handlers of the component without a requirement.
TARGETS = ["echo", "fail"]
STACK = "aegis-conformance"
REGION = "us-east-1"


def handled_ids() -> list[str]:
    """The requirement ids of the dispatch table: its `"<id>" =>` (and `"a" | "b" =>`) arms."""
    ids: list[str] = []
    for line in HANDLERS_SRC.read_text().splitlines():
        m = re.match(r'^\s*((?:"\d+-\d+"\s*\|?\s*)+)=>', line)
        if m:
            ids.extend(re.findall(r'"(\d+-\d+)"', m.group(1)))
    return ids


def id_key(description_id: str) -> tuple[int, int]:
    a, b = description_id.split("-")
    return int(a), int(b)


def upload(url: str, name: str, wasm: bytes) -> None:
    request = urllib.request.Request(
        f"{url}/v1/components/{name}",
        data=wasm,
        method="POST",
        headers={"Content-Type": "application/wasm"},
    )
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=300) as reply:
                if reply.status not in (200, 201):
                    raise RuntimeError(f"upload {name}: HTTP {reply.status}")
                return
        except urllib.error.HTTPError as e:
            if e.code == 429 and attempt < 4:
                time.sleep(1 + attempt)
                continue
            raise RuntimeError(f"upload {name}: HTTP {e.code}: {e.read()[:300]!r}") from e


class StubCfn:
    """CloudFormation, stubbed: every logical id is a Lambda function of the same name.

    The validator's `sam.Invoker` only calls `get_paginator("list_stack_resources").paginate()`,
    and its log retriever `describe_stack_resource` (to name the function's log group).
    """

    def __init__(self, names: dict[str, str]):
        self._names = names

    def get_paginator(self, _name: str) -> StubCfn:
        return self

    def describe_stack_resource(self, StackName: str, LogicalResourceId: str) -> dict:  # noqa: N803 - boto3's names
        return {
            "StackResourceDetail": {
                "StackName": StackName,
                "LogicalResourceId": LogicalResourceId,
                "PhysicalResourceId": self._names.get(LogicalResourceId, ""),
                "ResourceType": "AWS::Lambda::Function",
            }
        }

    def paginate(self, **_kwargs):
        yield {
            "StackResourceSummaries": [
                {
                    "ResourceType": "AWS::Lambda::Function",
                    "LogicalResourceId": logical,
                    "PhysicalResourceId": physical,
                }
                for logical, physical in self._names.items()
            ]
        }


# The execution ARN a CloudWatch filter pattern names (`$.durableExecutionArn = "<arn>"`).
FILTER_ARN = re.compile(r'\$\.(?:durableExecutionArn|executionArn) = "((?:[^"\\]|\\.)*)"')


def execution_id_of(arn: str) -> str:
    """The execution id an Aegis execution ARN ends with (host/src/api/lambda/arn.rs:
    `arn:aws:lambda:<region>:<account>:function:<workflow>:<version>/durable-execution/<name>/<id>`)."""
    _, sep, rest = arn.partition("/durable-execution/")
    if not sep or "/" not in rest:
        raise ValueError(f"not an execution ARN: {arn!r}")
    return rest.rsplit("/", 1)[1]


class HostLogs:
    """CloudWatch Logs, answered from the host: `filter_log_events` with the validator's
    execution-scoped filter pattern reads that execution's log (`GET /v1/executions/{id}/logs`),
    a page per call, its `nextToken` the page's `next_after`. Each line is an event whose
    `message` is the line as the workflow wrote it (a JSON line stays that JSON, which the
    validator parses); `timestamp` is when it was written, and `ingestionTime` the same, since the
    host writes a line before the journal records after it. Only the execution's own lines are
    kept, which is what CloudWatch's filter on the execution ARN selects; the time window is
    applied as CloudWatch applies it."""

    def __init__(self, url: str):
        self._url = url

    def filter_log_events(self, **kwargs) -> dict:
        pattern = kwargs.get("filterPattern", "")
        m = FILTER_ARN.search(pattern)
        if not m:
            raise ValueError(f"the stub reads one execution's log; filter pattern {pattern!r}")
        arn = re.sub(r"\\(.)", r"\1", m.group(1))
        query = {"limit": "1000"}
        if kwargs.get("nextToken"):
            query["after"] = kwargs["nextToken"]
        request = urllib.request.Request(
            f"{self._url}/v1/executions/{execution_id_of(arn)}/logs?{urllib.parse.urlencode(query)}"
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            page = json.load(reply)
        start, end = kwargs.get("startTime", 0), kwargs.get("endTime", 2**63)
        events = [
            {
                "logStreamName": "aegis",
                "timestamp": r["timestamp"],
                "ingestionTime": r["timestamp"],
                "message": r["message"],
                "eventId": str(r["sequence"]),
            }
            for r in page["records"]
            if start <= r["timestamp"] <= end
        ]
        answer: dict = {"events": events, "searchedLogStreams": []}
        if page["next_after"] is not None:
            answer["nextToken"] = str(page["next_after"])
        return answer


def no_ingestion_delay(cloudwatch) -> type:
    """The validator's log retriever without CloudWatch's ingestion waits (it sleeps before it
    reads, then polls for 10 s more): the host's lines are written before the invocation that
    wrote them returns, so the first read has them all."""

    class Retriever(cloudwatch.CloudWatchLogRetriever):
        DEFAULT_WAIT_SECONDS = 0
        EVENT_POLL_TIMEOUT_SECONDS = 0

        def get_execution_log_events(self, *args, **kwargs):
            kwargs["wait_seconds"] = 0
            return super().get_execution_log_events(*args, **kwargs)

    return Retriever


class PerThread(io.TextIOBase):
    """Stands in for stdout and stderr while the pool runs: each worker thread writes to its own
    buffer (the validator prints its progress), so that requirements running side by side do
    not interleave, and the report stays readable."""

    def __init__(self) -> None:
        self._local = threading.local()

    def buffer_of_thread(self) -> io.StringIO:
        if not hasattr(self._local, "buf"):
            self._local.buf = io.StringIO()
        return self._local.buf

    def reset(self) -> str:
        text = self.buffer_of_thread().getvalue()
        self._local.buf = io.StringIO()
        return text

    def write(self, text: str) -> int:
        return self.buffer_of_thread().write(text)


def one_line(errors: list[str]) -> str:
    text = "; ".join(errors) if errors else "failed"
    text = " ".join(text.split())
    return text if len(text) <= 240 else text[:237] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the host, e.g. http://127.0.0.1:8080")
    parser.add_argument("--wasm", default=str(DEFAULT_WASM), help="the conformance component")
    parser.add_argument("--only", default="", help="comma-separated requirement ids")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--output", default="", help="folder for each execution history (JSON)")
    parser.add_argument("--verbose", action="store_true", help="show the validator's output")
    args = parser.parse_args()
    url = args.url.rstrip("/")

    import boto3
    from botocore.config import Config

    from aws_durable_execution_conformance_tests import cloudwatch, sam, validate
    from aws_durable_execution_conformance_tests.config import TESTS_DIR

    files = validate.discover_test_files(TESTS_DIR, "all")
    suite_of = {did: Path(path).parent.name for did, path in files.items()}
    wanted = sorted(files, key=id_key)
    if args.only:
        only = {x.strip() for x in args.only.split(",") if x.strip()}
        wanted = [d for d in wanted if d in only]

    handled = set(handled_ids())
    wasm = Path(args.wasm).read_bytes()
    to_run = [d for d in wanted if d in handled]
    started = time.time()

    lam = boto3.client(
        "lambda",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="conformance",
        aws_secret_access_key="conformance",
        config=Config(retries={"mode": "standard", "max_attempts": 5}, read_timeout=960),
    )
    cfn = StubCfn({PREFIX + d: PREFIX + d for d in to_run})
    validate.CloudWatchLogRetriever = no_ingestion_delay(cloudwatch)
    clients = {"lambda": lam, "cloudformation": cfn, "logs": HostLogs(url)}
    invoker = sam.Invoker(STACK, region=REGION, lambda_client=lam, cfn_client=cfn)
    output_dir = args.output or tempfile.mkdtemp(prefix="aegis-conformance-out-")
    tmp_dir = tempfile.mkdtemp(prefix="aegis-conformance-")

    results: dict[str, tuple[bool, str]] = {}
    for did in wanted:
        if did not in handled:
            gap = GAPS.get(did)
            results[did] = (False, f"no handler yet: {gap}" if gap else "no handler yet")
    to_run = [d for d in to_run if d not in results]
    for did in to_run:
        upload(url, PREFIX + did, wasm)
    # The functions chained invokes (5-x) call: the same component, as `echo` and `fail`.
    if any(did.startswith("5-") for did in to_run):
        for target in TARGETS:
            upload(url, PREFIX + target, wasm)

    def run_one(did: str) -> tuple[str, bool, str]:
        try:
            result = validate.validate_description(
                PREFIX + did,
                did,
                files[did],
                invoker,
                tmp_dir,
                REGION,
                clients,
                output_dir,
            )
        except Exception as e:  # noqa: BLE001 - one requirement's crash must not stop the run
            return did, False, f"validator raised {type(e).__name__}: {e}"
        finally:
            if args.verbose:
                real_stderr.write(f"--- {did}\n{router.reset()}")
            else:
                router.reset()
        return did, result.passed, "" if result.passed else one_line(result.errors)

    router = PerThread()
    real_stdout, real_stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = router
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
            for did, passed, reason in pool.map(run_one, to_run):
                results[did] = (passed, reason)
    finally:
        sys.stdout, sys.stderr = real_stdout, real_stderr
    elapsed = time.time() - started

    total = len(wanted)
    passed_ids = [d for d in wanted if results[d][0]]
    print(f"{'suite':<20} {'passed':>6} {'of':>4}")
    for suite in SUITES:
        ids = [d for d in wanted if suite_of[d] == suite]
        if ids:
            ok = sum(1 for d in ids if results[d][0])
            print(f"{suite:<20} {ok:>6} {len(ids):>4}")
    print(f"{'total':<20} {len(passed_ids):>6} {total:>4}")
    print()
    failing = [d for d in wanted if not results[d][0]]
    if failing:
        print("failing:")
        for did in failing:
            print(f"  {did:<6} {suite_of[did]:<19} {results[did][1]}")
        print()
    print(f"{len(passed_ids)}/{total} passed in {elapsed:.0f} s (histories in {output_dir})")

    if args.only:
        return 0 if not failing else 1
    baseline = int(BASELINE.read_text().split()[0]) if BASELINE.exists() else 0
    if len(passed_ids) < baseline:
        print(f"below the baseline of {baseline} (tests/conformance/baseline)")
        return 1
    if len(passed_ids) > baseline:
        print(f"above the baseline of {baseline}: raise tests/conformance/baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
