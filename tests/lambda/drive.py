"""Drives the host's AWS Lambda durable-functions API with AWS's own clients: boto3's `lambda`
client and the AWS CLI, both pointed at the host with an endpoint URL and signing with a tenant
key (access key id = the key's id, secret = the API key).

Run by `tests/tests/e2e/lambda.rs` against a keyed host on which tenant A has uploaded the
`steps3` and `callback` fixtures. Environment: AEGIS_URL; AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (tenant A); OTHER_ACCESS_KEY_ID and OTHER_SECRET_ACCESS_KEY (tenant B,
which has no components). Every check raises on failure; the last line printed is `ok` and the
exit status 0 when all hold.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore.exceptions
from botocore.config import Config

URL = os.environ["AEGIS_URL"]
REGION = "us-east-1"


def client(key_id, secret):
    return boto3.client(
        "lambda",
        endpoint_url=URL,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        # A refusal must reach the test as it is, not be retried away.
        config=Config(retries={"max_attempts": 1}),
    )


A = client(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
B = client(os.environ["OTHER_ACCESS_KEY_ID"], os.environ["OTHER_SECRET_ACCESS_KEY"])


def check(cond, what, got=None):
    if not cond:
        raise AssertionError(f"{what}" + (f": got {got!r}" if got is not None else ""))


def refused(code, call, *args, **kwargs):
    """Runs the call and checks that it fails with the AWS error `code`; returns the error."""
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"{call.__name__} should fail with {code}", e.response)
        check(e.response["ResponseMetadata"].get("RequestId"), "an error carries a request id")
        return e
    raise AssertionError(f"{call.__name__} should have failed with {code}")


def until(what, probe, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def history(lam, arn, **kwargs):
    pages = lam.get_paginator("get_durable_execution_history").paginate(
        DurableExecutionArn=arn, **kwargs
    )
    return [e for page in pages for e in page["Events"]]


def callback_id(lam, arn):
    def probe():
        started = [e for e in history(lam, arn) if e["EventType"] == "CallbackStarted"]
        return started and started[0]["CallbackStartedDetails"]["CallbackId"]

    return until("CallbackStarted", probe)


def ended(lam, arn):
    return until(
        "the execution to end",
        lambda: (lambda g: g["Status"] != "RUNNING" and g)(
            lam.get_durable_execution(DurableExecutionArn=arn)
        ),
    )


def synchronous_invoke():
    r = A.invoke(FunctionName="steps3", Qualifier="$LATEST", Payload=b'"s"',
                 DurableExecutionName="first")
    check(r["StatusCode"] == 200, "a RequestResponse invoke answers 200", r["StatusCode"])
    check(r["Payload"].read() == b'"s-a-b-c"', "it answers the result once the execution ended")
    check(r["ExecutedVersion"] == "1", "it names the version run", r["ExecutedVersion"])
    arn = r["DurableExecutionArn"]
    check(arn.startswith("arn:aws:lambda:us-east-1:") and "/durable-execution/first/" in arn,
          "the ARN has the service model's shape", arn)
    again = A.invoke(FunctionName="steps3", Qualifier="$LATEST", Payload=b'"s"',
                     DurableExecutionName="first")
    check(again["DurableExecutionArn"] == arn, "the same name and payload is the same execution")
    refused("DurableExecutionAlreadyStartedException", A.invoke, FunctionName="steps3",
            Payload=b'"t"', DurableExecutionName="first")
    refused("InvalidRequestContentException", A.invoke, FunctionName="steps3", Payload=b"{no")
    refused("ResourceNotFoundException", A.invoke, FunctionName="absent", Payload=b"{}")
    refused("InvalidParameterValueException", A.invoke, FunctionName="steps3",
            Qualifier="prod", Payload=b"{}")
    return arn


def reads(arn):
    g = A.get_durable_execution(DurableExecutionArn=arn)
    check(g["Status"] == "SUCCEEDED" and g["Result"] == '"s-a-b-c"', "GetDurableExecution", g)
    check(g["InputPayload"] == '"s"' and g["DurableExecutionName"] == "first", "its input", g)
    check(g["EndTimestamp"] >= g["StartTimestamp"], "epoch-second timestamps parse as times", g)
    check(g["FunctionArn"].endswith(":function:steps3:1"), "the function ARN", g["FunctionArn"])
    bare = A.get_durable_execution(DurableExecutionArn=arn, IncludeExecutionData=False) \
        if "IncludeExecutionData" in A.meta.service_model.operation_model(
            "GetDurableExecution").input_shape.members else None
    if bare is not None:
        check("InputPayload" not in bare and "Result" not in bare, "data left out", bare)
    events = history(A, arn, IncludeExecutionData=True, MaxItems=3)
    types = [e["EventType"] for e in events]
    check(types == ["ExecutionStarted"] + ["StepStarted", "StepSucceeded"] * 3
          + ["InvocationCompleted", "ExecutionSucceeded"], "the history, paged by 3", types)
    check([e["EventId"] for e in events] == list(range(1, 10)), "EventIds count from 1")
    check(events[1]["StepStartedDetails"] == {}, "empty details are present", events[1])
    check(events[2]["StepSucceededDetails"]["Result"]["Payload"] == '"s-a"', "a step's result")
    check("NextAttemptDelaySeconds" not in events[2]["StepSucceededDetails"]["RetryDetails"],
          "absent values are left out, not null", events[2])
    newest = A.get_durable_execution_history(DurableExecutionArn=arn, ReverseOrder=True,
                                             MaxItems=2)
    check([e["EventId"] for e in newest["Events"]] == [9, 8] and newest["NextMarker"],
          "ReverseOrder pages newest first", newest)
    withheld = A.get_durable_execution_history(DurableExecutionArn=arn,
                                               IncludeExecutionData=False)["Events"]
    check(withheld[-1]["ExecutionSucceededDetails"]["Result"] == {"Truncated": True},
          "IncludeExecutionData=false withholds payloads", withheld[-1])
    refused("ResourceNotFoundException", A.get_durable_execution,
            DurableExecutionArn=arn.rsplit("/", 1)[0] + "/ex_00000000000000000000000000000000")
    refused("InvalidParameterValueException", A.get_durable_execution_history,
            DurableExecutionArn=arn, Marker="not-a-marker")


def callbacks():
    r = A.invoke(FunctionName="callback", InvocationType="Event",
                 Payload=json.dumps({"timeout_seconds": 300, "heartbeat_seconds": None}))
    check(r["StatusCode"] == 202, "an Event invoke answers 202 at once", r["StatusCode"])
    arn = r["DurableExecutionArn"]
    cb = callback_id(A, arn)
    # Tenant B can neither see the execution nor complete its callback.
    refused("ResourceNotFoundException", B.get_durable_execution, DurableExecutionArn=arn)
    refused("ResourceNotFoundException", B.send_durable_execution_callback_success,
            CallbackId=cb, Result=b"{}")
    A.send_durable_execution_callback_heartbeat(CallbackId=cb)
    A.send_durable_execution_callback_success(CallbackId=cb, Result=b'{"approved": true}')
    done = ended(A, arn)
    check(done["Status"] == "SUCCEEDED"
          and json.loads(done["Result"]) == {"callback": {"approved": True}},
          "the callback's result reaches the workflow", done)
    refused("ResourceNotFoundException", A.send_durable_execution_callback_success,
            CallbackId=cb, Result=b"{}")

    r = A.invoke(FunctionName="callback", InvocationType="Event",
                 Payload=json.dumps({"timeout_seconds": 300, "heartbeat_seconds": None}))
    failing = r["DurableExecutionArn"]
    A.send_durable_execution_callback_failure(
        CallbackId=callback_id(A, failing),
        Error={"ErrorType": "Review.Rejected", "ErrorMessage": "not this one"})
    done = ended(A, failing)
    check(done["Status"] == "FAILED" and done["Error"]["ErrorType"] == "Review.Rejected",
          "a failed callback fails the workflow with its error", done)


def stop_and_list():
    r = A.invoke(FunctionName="callback", InvocationType="Event",
                 Payload=json.dumps({"timeout_seconds": 300, "heartbeat_seconds": None}))
    arn = r["DurableExecutionArn"]
    callback_id(A, arn)
    refused("ResourceNotFoundException", B.stop_durable_execution, DurableExecutionArn=arn)
    first = A.stop_durable_execution(DurableExecutionArn=arn,
                                     Error={"ErrorType": "Ops.Cancelled", "ErrorMessage": "no"})
    g = A.get_durable_execution(DurableExecutionArn=arn)
    check(g["Status"] == "STOPPED" and g["Error"] == {"ErrorType": "Ops.Cancelled",
                                                     "ErrorMessage": "no"}, "stopped", g)
    second = A.stop_durable_execution(DurableExecutionArn=arn)
    check(second["StopTimestamp"] == first["StopTimestamp"],
          "stopping an ended execution answers when it ended")

    pages = A.get_paginator("list_durable_executions_by_function").paginate(
        FunctionName="callback", MaxItems=1)
    listed = [x for page in pages for x in page["DurableExecutions"]]
    check([x["Status"] for x in listed] == ["STOPPED", "FAILED", "SUCCEEDED"],
          "newest first, one per page", [x["Status"] for x in listed])
    some = A.list_durable_executions_by_function(FunctionName="callback",
                                                 Statuses=["SUCCEEDED", "STOPPED"],
                                                 ReverseOrder=True)["DurableExecutions"]
    check([x["Status"] for x in some] == ["SUCCEEDED", "STOPPED"],
          "several statuses, oldest first", some)
    refused("ResourceNotFoundException", B.list_durable_executions_by_function,
            FunctionName="callback")
    refused("InvalidParameterValueException", A.list_durable_executions_by_function,
            FunctionName="callback", Statuses=["DONE"])


def signatures():
    wrong = client(os.environ["AWS_ACCESS_KEY_ID"], "aeg_wrong")
    refused("InvalidSignatureException", wrong.list_durable_executions_by_function,
            FunctionName="steps3")
    unknown = client("key_0000000000000000", os.environ["AWS_SECRET_ACCESS_KEY"])
    refused("UnrecognizedClientException", unknown.list_durable_executions_by_function,
            FunctionName="steps3")
    try:
        urllib.request.urlopen(f"{URL}/2025-12-01/functions/steps3/durable-executions")
        raise AssertionError("an unsigned request must be refused")
    except urllib.error.HTTPError as e:
        check(e.code == 403 and e.headers["x-amzn-ErrorType"]
              == "MissingAuthenticationTokenException", "unsigned", (e.code, dict(e.headers)))


def cli(*args):
    env = dict(os.environ, AWS_DEFAULT_REGION=REGION, AWS_MAX_ATTEMPTS="1")
    out = subprocess.run(["aws", "--endpoint-url", URL, "lambda", *args], env=env,
                         capture_output=True, text=True, check=False)
    check(out.returncode == 0, f"aws lambda {args[0]}", out.stderr)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def aws_cli(tmp):
    result = os.path.join(tmp, "result.json")
    r = cli("invoke", "--function-name", "steps3", "--qualifier", "$LATEST",
            "--durable-execution-name", "from-cli", "--payload", '"cli"', result)
    check(r["StatusCode"] == 200, "aws lambda invoke", r)
    with open(result) as f:
        check(json.load(f) == "cli-a-b-c", "the CLI writes the result")
    arn = r["DurableExecutionArn"]
    g = cli("get-durable-execution", "--durable-execution-arn", arn)
    check(g["Status"] == "SUCCEEDED", "aws lambda get-durable-execution", g)
    h = cli("get-durable-execution-history", "--durable-execution-arn", arn)
    check(h["Events"][-1]["EventType"] == "ExecutionSucceeded", "the CLI's history", h)
    listed = cli("list-durable-executions-by-function", "--function-name", "steps3")
    check(arn in [x["DurableExecutionArn"] for x in listed["DurableExecutions"]], "its list")
    r = cli("invoke", "--function-name", "callback", "--invocation-type", "Event",
            "--payload", '{"timeout_seconds": 300, "heartbeat_seconds": null}', result)
    waiting = r["DurableExecutionArn"]
    cb = callback_id(A, waiting)
    cli("send-durable-execution-callback-heartbeat", "--callback-id", cb)
    cli("send-durable-execution-callback-success", "--callback-id", cb, "--result", '"yes"')
    check(ended(A, waiting)["Status"] == "SUCCEEDED", "a callback completed with the CLI")
    r = cli("invoke", "--function-name", "callback", "--invocation-type", "Event",
            "--payload", '{"timeout_seconds": 300, "heartbeat_seconds": null}', result)
    failing = r["DurableExecutionArn"]
    cli("send-durable-execution-callback-failure", "--callback-id", callback_id(A, failing),
        "--error", "ErrorType=Cli.No,ErrorMessage=refused")
    check(ended(A, failing)["Error"]["ErrorType"] == "Cli.No", "a callback failed with the CLI")
    r = cli("invoke", "--function-name", "callback", "--invocation-type", "Event",
            "--payload", '{"timeout_seconds": 300, "heartbeat_seconds": null}', result)
    stopping = r["DurableExecutionArn"]
    callback_id(A, stopping)
    s = cli("stop-durable-execution", "--durable-execution-arn", stopping)
    check("StopTimestamp" in s, "aws lambda stop-durable-execution", s)
    check(A.get_durable_execution(DurableExecutionArn=stopping)["Status"] == "STOPPED",
          "stopped with the CLI")


def main():
    arn = synchronous_invoke()
    reads(arn)
    callbacks()
    stop_and_list()
    signatures()
    aws_cli(sys.argv[1] if len(sys.argv) > 1 else "/tmp")
    print("ok")


if __name__ == "__main__":
    main()
