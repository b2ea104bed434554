"""The project's own errors, and the one place that turns them into one-line CLI messages.

Every error that means "the user's input is wrong" (a config key, a manifest line, a store that
does not fit, a file that is not there or already there) derives from :class:`UserError` or is
one of the OS errors below. A command wraps its work in :func:`reported`: those errors become a
``click.ClickException`` holding the error's own message (which names the file, the item and the
value), so the user sees one line and exit code 1, never a traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import click


class UserError(ValueError):
    """Base of the project's bad-input errors (ConfigError, ManifestError, DataError, ...)."""


# OS errors that a user's path causes: a missing input, an output that already exists, a file
# where a folder was expected.
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
# Errnos of a full disk or quota, and of a file past the size limit (``ulimit -f``): the
# machine's state, not a bug. Every writer commits atomically (staging + rename), so what was
# finished is kept and a re-run (``--resume`` where the command has it) continues.
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def full_disk_names(path: str | Path) -> Iterator[None]:
    """Writing ``path``: a full disk or file-size limit becomes ``OSError(errno, strerror,
    path)``, so that its one-line message names the file (a ``write()``'s error names none, and
    zarr and HDF5 report it as library text with "errno = 28" inside); other errors pass."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        for code in FULL_DISK_ERRNOS:
            if getattr(exc, "errno", None) == code or f"errno = {code}," in str(exc):
                raise OSError(code, os.strerror(code), str(path)) from exc
        raise


class ReportingGroup(click.Group):
    """A command group whose commands all run inside :func:`reported` (the root ``weakfeat``
    group and each stage group, which also run alone as ``python -m extract`` etc.)."""

    def invoke(self, ctx: click.Context):
        with reported():
            return super().invoke(ctx)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Run the body; a user error leaves as ``click.ClickException(message)``."""
    try:
        yield
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    except USER_OS_ERRORS as exc:
        raise click.ClickException(_path_message(exc)) from exc
    except OSError as exc:
        if exc.errno not in FULL_DISK_ERRNOS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        raise click.ClickException(
            f"{exc.strerror or 'no space left'}{where}: free space (or raise the limit) and run "
            "the command again; finished work is kept") from exc


def _path_message(exc: OSError) -> str:
    """``PATH: what is wrong with it`` for an OS error about a user's path (no "[Errno N]")."""
    if exc.filename is None:
        return str(exc)
    path = str(exc.filename)
    # (the project never creates a file exclusively, so a one-path FileExistsError on an
    # existing non-folder is a folder that could not be made there)
    if isinstance(exc, NotADirectoryError) or (
            isinstance(exc, FileExistsError) and exc.filename2 is None
            and Path(path).exists() and not Path(path).is_dir()):
        return f"{path}: a file stands where a folder is needed (choose another path)"
    reason = {FileNotFoundError: "not found", FileExistsError: "already exists",
              IsADirectoryError: "is a folder, a file is needed"}.get(type(exc), exc.strerror)
    return f"{path}: {reason}"
