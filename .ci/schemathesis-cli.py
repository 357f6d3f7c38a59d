"""Runs the schemathesis CLI, guarded against a CPython bug that crashes it at random.

Hypothesis names a strategy's lambdas by parsing their module's source (`ast.parse`), and does so
every time it validates a recursive strategy. On CPython 3.11.7 (this image's `python3`),
`ast.parse` can raise `SystemError: AST constructor recursion depth mismatch` (CPython
gh-106905, fixed in later releases) depending on the stack depth at the call: schemathesis then
reports a "Runtime Error" for whichever operation it was generating data for, though the API
was never called. The name is only used in messages, so here a failure to parse falls back to
a plain one; every other behaviour is schemathesis' own.
"""

import sys

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _described_or_plain(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda"


lambda_sources._lambda_description = _described_or_plain

from schemathesis.cli import schemathesis  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "schemathesis"
    sys.exit(schemathesis())
