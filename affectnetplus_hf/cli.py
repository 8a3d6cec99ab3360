"""The ``affectnetplus`` command line.

Each subcommand lives in ``affectnetplus_hf/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the parsed
namespace and returning an exit code). Heavy imports happen inside ``func`` so that ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "sample",
    "info",
    "train",
    "calibrate",
    "predict",
    "label",
    "build",
    "baseline",
    "evaluate",
    "push",
    "demo",
    "metrics",
    "app",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="affectnetplus",
        description="AffectNet+ soft labels: build the dataset, train soft-labelers, label, evaluate.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING, ...)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"affectnetplus_hf.commands.{name}")
        module.register(subparsers)
    return parser


def _stdout_pipe_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (so a ``BrokenPipeError`` came from our output, not
    from a worker's pipe). Where this cannot be polled, assume it is stdout, the usual case."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # captured or closed stdout: the error came from elsewhere
        return False
    try:
        import select

        poller = select.poll()
        poller.register(fileno, select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() on this platform
        return True


def _quiet_broken_pipe() -> None:
    """stdout's reader went away (``affectnetplus ... | head``): send what is left to devnull, so that
    the interpreter's final flush does not fail again (as the Python docs on SIGPIPE recommend)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured, closed)
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit code.

    Errors from a command become one ``ERROR`` log line and exit code 1: ``ValueError``/``OSError`` as
    their message, any other exception as ``<ExceptionType>: <message>``; the traceback is logged too at
    ``--log-level DEBUG``. Ctrl-C exits with 130; a closed stdout pipe (``| head``) exits 0 quietly.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    if not isinstance(level, int):
        level = logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logger = logging.getLogger("affectnetplus")
    debug = level <= logging.DEBUG
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at interpreter exit
        return code
    except BrokenPipeError as error:
        if not _stdout_pipe_closed():
            logger.error("%s", error, exc_info=debug)
            return 1
        _quiet_broken_pipe()
        return 0
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    except (ValueError, OSError) as error:
        logger.error("%s", error, exc_info=debug)
        return 1
    except Exception as error:  # noqa: BLE001 - any other failure of a command: one line, not a traceback
        text = str(error).strip()
        logger.error("%s: %s", type(error).__name__, text.splitlines()[0] if text else "(no message)", exc_info=debug)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
