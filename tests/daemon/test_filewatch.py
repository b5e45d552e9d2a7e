"""FileWatcher: which secret files changed, across the ways files get rotated."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from exporter.daemon.filewatch import FileWatcher


def test_a_rewritten_file_is_reported_once(tmp_path: Path) -> None:
    secret = tmp_path / "apikey"
    secret.write_text("old")
    watcher = FileWatcher(lambda: [secret])
    assert watcher.check() == []
    secret.write_text("new")
    assert watcher.check() == [secret]
    assert watcher.check() == []


def test_same_content_written_again_is_not_a_change(tmp_path: Path) -> None:
    secret = tmp_path / "apikey"
    secret.write_text("same")
    watcher = FileWatcher(lambda: [secret])
    secret.write_text("same")
    os.utime(secret, (1, 1))
    assert watcher.check() == []


def test_a_kubernetes_style_symlink_swap_is_a_change(tmp_path: Path) -> None:
    # kubelet writes ..2024_1/apikey, points ..data at it, and apikey -> ..data/apikey.
    first, second = tmp_path / "..2024_1", tmp_path / "..2024_2"
    first.mkdir()
    second.mkdir()
    (first / "apikey").write_text("old")
    (second / "apikey").write_text("new")
    (tmp_path / "..data").symlink_to(first.name)
    secret = tmp_path / "apikey"
    secret.symlink_to("..data/apikey")
    watcher = FileWatcher(lambda: [secret])
    swap = tmp_path / "..data_tmp"
    swap.symlink_to(second.name)
    swap.replace(tmp_path / "..data")
    assert watcher.check() == [secret]


def test_a_file_missing_for_a_moment_is_reported_when_it_is_back_changed(tmp_path: Path) -> None:
    secret = tmp_path / "apikey"
    secret.write_text("old")
    watcher = FileWatcher(lambda: [secret])
    secret.unlink()
    assert watcher.check() == []
    secret.write_text("new")
    assert watcher.check() == [secret]


def test_files_follow_the_configuration(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text("1")
    two.write_text("2")
    watched = [one]
    watcher = FileWatcher(lambda: list(watched))
    watched.append(two)
    assert watcher.check() == []  # newly named: remembered, not a change
    two.write_text("2b")
    watched.remove(one)
    one.write_text("1b")
    assert watcher.check() == [two]


async def test_run_calls_back_with_the_changed_files(tmp_path: Path) -> None:
    secret = tmp_path / "apikey"
    secret.write_text("old")
    watcher = FileWatcher(lambda: [secret])
    calls: list[list[Path]] = []
    called = asyncio.Event()

    async def on_change(paths: list[Path]) -> None:
        calls.append(paths)
        called.set()

    task = asyncio.create_task(watcher.run(on_change, interval=0.01))
    try:
        secret.write_text("new")
        await asyncio.wait_for(called.wait(), 5)
    finally:
        task.cancel()
    assert calls == [[secret]]
