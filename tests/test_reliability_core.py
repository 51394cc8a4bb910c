"""Reliability of the atomic writes every stage uses (edn.core.atomic): the next write of
an artifact removes the temporaries its killed writers left on this machine, and only
theirs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edn.core import atomic
from edn.core.atomic import atomic_path, write_text


def test_the_next_write_removes_temporaries_of_killed_writers_only(tmp_path: Path) -> None:
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    host = atomic._host_tag()
    stale_file = tmp_path / f".x.npy.{host}-{dead}-ab12cd.partial.npy"
    stale_dir = tmp_path / f".x.npy.{host}-{dead}-ef34gh.partial"
    running = tmp_path / f".x.npy.{host}-{os.getpid()}-ij56kl.partial.npy"  # a writer still at work
    elsewhere = tmp_path / f".x.npy.otherhost-{dead}-mn78op.partial.npy"  # shared file system, another machine
    other_output = tmp_path / f".x.npy.old.{host}-{dead}-qr90st.partial"  # the temporary of x.npy.old
    for path in (stale_file, running, elsewhere, other_output):
        path.write_bytes(b"half")
    stale_dir.mkdir()
    (stale_dir / "frames.npy").write_bytes(b"half")

    write_text(tmp_path / "x.npy", "complete")
    assert (tmp_path / "x.npy").read_text() == "complete"
    assert not stale_file.exists() and not stale_dir.exists()
    assert running.exists() and elsewhere.exists() and other_output.exists()
    # A temporary of this process names it, so a later run can tell it from a live one.
    with atomic_path(tmp_path / "y.json") as temporary:
        assert temporary.name.startswith(f".y.json.{host}-{os.getpid()}-") and temporary.name.endswith(".partial.json")
        temporary.write_text("{}")
