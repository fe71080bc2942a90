"""Tests of the Azurite launcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from devhost import azurite as launcher
from devhost.azurite import Azurite, AzuriteError, build_connection_string, start_azurite


def test_connection_string_endpoints() -> None:
    parts = dict(item.split("=", 1) for item in build_connection_string(1, 2, 3).strip(";").split(";"))
    assert parts["AccountName"] == "devstoreaccount1"
    assert parts["BlobEndpoint"] == "http://127.0.0.1:1/devstoreaccount1"
    assert parts["QueueEndpoint"] == "http://127.0.0.1:2/devstoreaccount1"
    assert parts["TableEndpoint"] == "http://127.0.0.1:3/devstoreaccount1"


def test_session_azurite_serves_queues_and_tables(azurite: Azurite) -> None:
    assert azurite.is_running()
    queue = QueueClient.from_connection_string(azurite.connection_string, "azurite-launcher-check")
    try:
        queue.create_queue()
    except ResourceExistsError:
        pass
    queue.send_message("ping")
    assert [message.content for message in queue.receive_messages()] == ["ping"]
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    table = tables.create_table_if_not_exists("AzuriteLauncherCheck")
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "value": 1})
    assert table.get_entity("p", "r")["value"] == 1


def test_disk_location_and_stop(tmp_path: Path) -> None:
    emulator = start_azurite(location=tmp_path / "data")
    try:
        assert emulator.is_running()
        assert emulator.connection_string.count("127.0.0.1") == 3
    finally:
        emulator.stop()
    assert not emulator.is_running()
    assert any((tmp_path / "data").iterdir())


def test_rejects_memory_and_location(tmp_path: Path) -> None:
    with pytest.raises(AzuriteError, match="both in_memory=True and a location"):
        start_azurite(in_memory=True, location=tmp_path)


def test_missing_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(launcher, "AZURITE_BIN", tmp_path / "azurite")
    with pytest.raises(AzuriteError, match="Run `make install` or `npm install`"):
        start_azurite(in_memory=True)
