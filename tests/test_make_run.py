"""`make run` as a newcomer uses it: the URLs it shows, and the files it leaves behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_it_serves_and_shows_the_same_url_on_another_port() -> None:
    # when: the commands `PORT=8123 make run` would run
    result = subprocess.run(
        ["make", "-n", "run", "PORT=8123"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )

    # then: the server itself knows its URL, so the inbox page shows the webhook on port 8123
    lines = result.stdout.splitlines()
    assert "SITE_URL=http://127.0.0.1:8123 .venv/bin/python manage.py seed_demo" in lines
    assert "SITE_URL=http://127.0.0.1:8123 .venv/bin/python manage.py runserver 127.0.0.1:8123" in lines


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("name", ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "db.sqlite3-journal"])
def test_it_leaves_no_untracked_sqlite_files(name: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", name], cwd=ROOT, capture_output=True, timeout=30, check=False
    )

    assert result.returncode == 0, f"{name} is not ignored"
