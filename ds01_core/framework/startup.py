"""Start-up failures: one exit code per kind, and one line saying what was wrong and what to do.

Every program (``ds01``, ``ds01d``, ``ds01-gateway``, ``ds01-api``) does what can fail before
it runs inside :func:`starting`, so a failure to start is told the same way whichever program
it is, with the same exit code for the same kind of failure — what a systemd unit, a script or
an admin reading the journal can act on:

- 1 :data:`EXIT_FAILURE`: anything else, an unexpected error (a bug; ``--debug`` shows the
  traceback);
- 2 :data:`EXIT_CONFIG`: the configuration is missing, unreadable or invalid, or the command line
  is (click's code for a usage error);
- 3 :data:`EXIT_PLUGINS`: a required plugin is not installed or fails to load, or the plugins
  disagree (two declare the same section);
- 4 :data:`EXIT_UNAVAILABLE`: the host refuses: the socket cannot be bound (in use, no such
  directory), systemd passed another socket, or permission is denied.

The message is ``<program>: cannot start: <what> (<what to do>)`` on one line of stderr, never a
traceback: a multi-line configuration report becomes its problems joined by ``;`` (``ds01 config
check`` lists them one per line).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from ds01_core.domain.config import Config, ConfigError
from ds01_core.framework.manager import PluginStartupError

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_PLUGINS = 3
EXIT_UNAVAILABLE = 4

log = logging.getLogger("ds01.startup")


class StartupError(Exception):
    """A failure to start a program found itself (a socket it cannot listen on, ...): the
    one-line message, with what to do, and the exit code of its kind."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.message = message
        self.code = code


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _config_line(exc: ConfigError) -> str:
    where = exc.source or "the configuration"
    problems = "; ".join(str(p) for p in exc.problems)
    if any(p.path for p in exc.problems):  # problems inside the file: say how to see them
        count = len(exc.problems)
        return (
            f"configuration refused: {where}: {count} problem(s): {problems} (fix the file; "
            "`ds01 config check` lists every problem)"
        )
    return f"configuration refused: {where}: {problems}"  # the file itself: its hint says what


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for a failure to start."""
    if isinstance(exc, StartupError):
        return exc.code, _one_line(exc.message)
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG, _one_line(_config_line(exc))
    if isinstance(exc, PluginStartupError):
        return EXIT_PLUGINS, _one_line(f"plugins: {exc} (`ds01 plugins` shows each plugin's state)")
    if isinstance(exc, PermissionError):
        what = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        return EXIT_UNAVAILABLE, _one_line(
            f"{what} (run it as root, or as the user its systemd unit names)"
        )
    return EXIT_FAILURE, _one_line(
        f"{type(exc).__name__}: {exc} (unexpected: run it again with --debug for the traceback)"
    )


def fail(program: str, exc: BaseException) -> NoReturn:
    """Tell why ``program`` cannot start, on one line of stderr, and exit with its code."""
    code, message = classify(exc)
    log.debug("%s cannot start", program, exc_info=exc)
    sys.stderr.write(f"{program}: cannot start: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


@contextmanager
def starting(program: str) -> Iterator[None]:
    """Run a program's start-up; any failure in it ends the process through :func:`fail`.

    ``SystemExit`` and ``KeyboardInterrupt`` pass through (a usage error click reports, an
    admin's Ctrl-C).
    """
    try:
        yield
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        fail(program, exc)


def require_writable(config: Config) -> None:
    """Refuse to start, before serving anything, when this process cannot write where it will:
    the state database, the event log, the runtime files. Checked without creating anything
    (the stores create their directories with their own modes); ``PermissionError`` names the
    first place refused."""
    paths = config.paths
    for target in (paths.state_db_path, paths.event_log_path, paths.snapshot_path):
        if os.path.exists(target):
            if not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
            continue
        place = target.parent  # the nearest directory there is: it is where this one is made
        while not os.path.exists(place) and place != place.parent:
            place = place.parent
        if not os.access(place, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(place))
