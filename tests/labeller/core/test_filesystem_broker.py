"""The embedded broker publishes whole messages only, and a bad message file never stops a worker."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from kombu import Connection
from kombu.transport import filesystem

from labeller.core.filesystem_broker import Transport, broker_transport_for
from labeller.core.queue_depth import queue_depths


@pytest.fixture
def channel(tmp_path: Path):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    with Connection("filesystem://", transport=Transport, transport_options=options) as connection:
        yield connection.default_channel, folder, options


def test_a_message_appears_under_its_name_only_once_written_whole(channel, monkeypatch):
    channel, folder, options = channel
    seen_before_rename = []
    real_replace = os.replace

    def replace(source, target):
        seen_before_rename.append((sorted(os.listdir(folder)), Path(source).read_bytes()))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    channel._put("interactive", {"task": "t", "args": [1]})
    (names, written), = seen_before_rename
    # While it was written, no file had a name a worker takes or the queue-depth count sees.
    assert not any(name.endswith(".interactive.msg") for name in names)
    assert written.startswith(b"{") and written.endswith(b"}")
    assert [name.endswith(".interactive.msg") for name in os.listdir(folder)] == [True]
    assert queue_depths("filesystem://", options, ["interactive"]) == {"interactive": 1}
    assert channel._get("interactive") == {"task": "t", "args": [1]}
    assert os.listdir(folder) == []


def test_a_message_file_that_does_not_decode_is_skipped_not_fatal(channel):
    channel, folder, _ = channel
    (folder / "1_aaaa.interactive.msg").write_bytes(b"")  # what kombu's own _put leaves mid-write
    channel._put("interactive", {"task": "next"})
    assert channel._get("interactive") == {"task": "next"}
    with pytest.raises(filesystem.Empty):
        channel._get("interactive")


def test_concurrent_publishing_and_consuming_loses_and_breaks_nothing(channel):
    channel, folder, _ = channel
    count = 300
    publisher = threading.Thread(target=lambda: [channel._put("bulk", {"n": n}) for n in range(count)])
    publisher.start()
    received = []
    while publisher.is_alive() or len(received) < count:
        try:
            received.append(channel._get("bulk")["n"])
        except filesystem.Empty:
            if not publisher.is_alive() and not any(name.endswith(".msg") for name in os.listdir(folder)):
                break
    publisher.join()
    assert sorted(received) == list(range(count))


def test_only_the_filesystem_broker_gets_this_transport():
    assert broker_transport_for("filesystem://") == "labeller.core.filesystem_broker:Transport"
    assert broker_transport_for("redis://127.0.0.1:6379/0") is None
