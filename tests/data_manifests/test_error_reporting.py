"""The one place that turns the project's errors into one-line messages (data_manifests.errors)."""

from __future__ import annotations

import errno
import subprocess
import sys

import click
import pytest

from data_manifests.errors import UserError, reported


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_a_full_disk_is_a_one_line_message_naming_the_file(code):
    with pytest.raises(click.ClickException) as info, reported():
        raise OSError(code, "No space left on device", "/data/run/checkpoints/last.pt")
    message = info.value.format_message()
    assert "/data/run/checkpoints/last.pt" in message and "finished work is kept" in message


def test_user_errors_are_reported_and_other_errors_keep_their_traceback():
    with pytest.raises(click.ClickException, match="bad value"), reported():
        raise UserError("bad value")
    with pytest.raises(OSError), reported():
        raise OSError(errno.EIO, "Input/output error")  # not the user's doing: a traceback
    with pytest.raises(KeyError), reported():
        raise KeyError("bug")


def test_a_file_size_limit_ends_a_command_with_one_line(tmp_path):
    """``ulimit -f`` (what a full disk looks like to a process): one line, exit 1 (Python
    ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process)."""
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))\n"
        "from data_manifests.errors import reported\n"
        "import click\n"
        "@click.command()\n"
        "def write():\n"
        "    with reported():\n"
        f"        open({str(tmp_path / 'big.bin')!r}, 'wb').write(b'x' * 1000000)\n"
        "write()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "File too large" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
