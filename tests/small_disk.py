"""Really small filesystems for the tests of a full or failing disk: a tmpfs of a few hundred KiB, or ext4
on a loop device (which can be made to fail read-only, as ext4 does on an I/O error). Mounting needs
root; where it is not permitted the test is skipped, saying so. The `small_disk` fixture (tests/conftest.py)
unmounts what it mounted."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest

__all__ = ["SmallDisk"]


class SmallDisk:
    """One mounted small filesystem at `path`, and a filler file that takes its free space."""

    def __init__(self, path: Path, kind: str, size_kib: int) -> None:
        self.path = path
        self.kind = kind
        self.filler = path / "filler"
        path.mkdir(parents=True, exist_ok=True)
        if kind == "tmpfs":
            cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)]
        elif kind == "ext4":
            image = path.with_suffix(".img")
            with image.open("wb") as fh:
                fh.truncate(size_kib * 1024)
            made = subprocess.run(
                ["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=False, capture_output=True, text=True
            )
            if made.returncode:
                pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
            cmd = ["mount", "-o", "loop,errors=remount-ro", str(image), str(path)]
        else:
            raise ValueError(f"unknown small disk kind {kind!r}")
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a {size_kib} KiB {kind} ({done.stderr.strip()}); run as root for this test")

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self) -> int:
        """Append to the filler until the disk refuses (ENOSPC); returns the filler's size."""
        block = b"\0" * 4096
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (4096, 1024, 1):
                while True:
                    try:
                        if os.write(fd, block[:size]) < size:
                            break
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.filler.stat().st_size

    def free(self) -> None:
        """Delete the filler: the space comes back."""
        self.filler.unlink(missing_ok=True)

    def fail_read_only(self) -> None:
        """Make ext4 fail as on an I/O error: it turns read-only at once, under open files too."""
        assert self.kind == "ext4", "only ext4 can be failed"
        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(self.path)], capture_output=True, text=True, check=True
        )
        device = Path(source.stdout.strip()).name
        Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("1\n")

    def unmount(self) -> None:
        if subprocess.run(["umount", str(self.path)], check=False, capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            self.path.with_suffix(".img").unlink()
