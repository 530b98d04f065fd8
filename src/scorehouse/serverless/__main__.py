"""`python -m scorehouse.serverless`: a container image's entry point for AWS Lambda.

AWS's runtime interface client (`awslambdaric`, the `lambda` extra) polls the Lambda Runtime
API at $AWS_LAMBDA_RUNTIME_API for events and answers each with `scorehouse.serverless.handler`.
AWS's own Python base images bring it; any other image (a slim Debian one) needs it.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the runtime interface client on scorehouse's handler until the environment stops.

    Exits 2 with one line when awslambdaric is not installed or $AWS_LAMBDA_RUNTIME_API is
    unset (not in Lambda, nor under the runtime interface emulator).
    """
    import os

    try:
        from awslambdaric.__main__ import main as ric
    except ImportError:
        print("error: awslambdaric is not installed: pip install 'scorehouse[lambda]'",
              file=sys.stderr)
        sys.exit(2)
    if not os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        print("error: $AWS_LAMBDA_RUNTIME_API is unset: run this inside AWS Lambda or the "
              "runtime interface emulator", file=sys.stderr)
        sys.exit(2)
    ric([sys.argv[0], "scorehouse.serverless.handler"])


if __name__ == "__main__":
    main()
