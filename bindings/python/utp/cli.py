"""The ``python -m utp`` command line.

``call URL OP A B``
    Print the result and exit 0; an ``ERR`` reply goes to stderr with exit 1;
    a connection failure (or a timeout) gives a clear message and exit 2.
``serve calc --on URL`` (or ``serve --on URL calc``; ``echo`` also works)
    Serve on unix://, tcp:// or shm:// until SIGINT or SIGTERM, then remove
    the socket file (or every link's region) and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from . import calculator
from .client import Client
from .errors import ServiceError, UtpError
from .endpoint import EndpointError, parse
from .server import DEFAULT_MAX_CLIENTS, Server

EXIT_OK = 0
EXIT_ERR_REPLY = 1
EXIT_NO_CONNECTION = 2

SERVICES = {
    "calc": calculator.handle_request,
    "echo": bytes,
}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m utp", description="utp: UTP frames over unix, tcp and shm")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    call = commands.add_parser("call", help="call the calculator: `call URL ADD 10 20` prints 30")
    call.add_argument("url", metavar="URL", help="endpoint of a calculator server")
    call.add_argument("op", metavar="OP", help="ADD, SUB, MUL or DIV")
    call.add_argument("a", metavar="A", help="left operand (signed 64-bit integer)")
    call.add_argument("b", metavar="B", help="right operand (signed 64-bit integer)")
    call.add_argument("--timeout", type=_seconds, default=5.0, help="seconds for connect and reply (default 5)")
    call.set_defaults(run=_run_call)

    serve = commands.add_parser("serve", help="serve calc or echo on an endpoint until SIGINT/SIGTERM")
    serve.add_argument("service", choices=sorted(SERVICES), help="the service to run")
    serve.add_argument("--on", required=True, metavar="URL", help="endpoint to listen on (unix://, tcp:// or shm://)")
    serve.add_argument("--max-clients", type=_positive, default=DEFAULT_MAX_CLIENTS, metavar="N",
                       help=f"clients served at once; beyond, a new one is told \"server busy\" "
                            f"(default {DEFAULT_MAX_CLIENTS})")
    serve.set_defaults(run=_run_serve)
    return parser


def _run_call(args: argparse.Namespace) -> int:
    request = f"{args.op} {args.a} {args.b}".encode()
    try:
        with Client(args.url, timeout=args.timeout) as client:
            reply = client.call(request)
    except ServiceError as error:
        return _fail(f"the server could not handle the request: {error}", EXIT_ERR_REPLY)
    except (EndpointError, UtpError) as error:  # no connection, timeout, broken or invalid answer
        return _fail(str(error), EXIT_NO_CONNECTION)
    try:
        result = calculator.parse_reply(reply)
    except ValueError as error:
        return _fail(str(error), EXIT_NO_CONNECTION)
    if isinstance(result, str):
        print(result, file=sys.stderr)
        return EXIT_ERR_REPLY
    print(result)
    return EXIT_OK


def _run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s %(levelname)-5s] %(message)s")
    try:
        server = _make_server(args.on, SERVICES[args.service], args.max_clients)
    except (EndpointError, UtpError) as error:
        return _fail(str(error), EXIT_NO_CONNECTION)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: server.stop())
    server.serve_forever()
    return EXIT_OK


def _make_server(url: str, handler, max_clients: int):
    """A :class:`~utp.server.Server` for unix/tcp, a :class:`~utp.shm_server.ShmServer` for shm."""
    if parse(url).scheme == "shm":
        from .shm_server import ShmServer  # only loaded when used: it needs ctypes, mmap and futexes

        return ShmServer(url, handler, max_clients=max_clients)
    return Server(url, handler, max_clients=max_clients)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _seconds(text: str) -> float:
    """Parse ``5``, ``5s`` or ``500ms`` into seconds."""
    scale, number = (0.001, text[:-2]) if text.endswith("ms") else (1.0, text.removesuffix("s"))
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text} (e.g. 5, 5s, 500ms)") from None
    if not (0 < value < 86400 * 365):
        raise argparse.ArgumentTypeError(f"the timeout must be positive and finite: {text}")
    return value


def _fail(message: str, code: int) -> int:
    print(f"utp: error: {message}", file=sys.stderr)
    return code
