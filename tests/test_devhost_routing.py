"""Tests of the local host's pure parts: route templates, keys, host.json and message encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.functions_host.config import HostConfig, parse_timespan
from devhost.functions_host.errors import HostStartError
from devhost.functions_host.keys import HostKeys, is_authorized
from devhost.functions_host.queues import decode_message, encode_message
from devhost.functions_host.routing import compile_route, split_path


def match(template: str, path: str) -> dict[str, str] | None:
    return compile_route(template).match(split_path(path))


@pytest.mark.parametrize(("template", "path", "expected"), [
    ("items/{id}", "items/abc", {"id": "abc"}),
    ("items/{id:int}", "items/42", {"id": "42"}),
    ("items/{id:int}", "items/-7", {"id": "-7"}),
    ("items/{id:int}", "items/abc", None),
    ("items/{id:int}", "items/99999999999", None),
    ("items/{id:long}", "items/99999999999", {"id": "99999999999"}),
    ("items/{id:guid}", "items/0f8fad5b-d9cb-469f-a165-70867728950e", {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
    ("items/{id:guid}", "items/not-a-guid", None),
    ("items/{name:alpha}", "items/Abc", {"name": "Abc"}),
    ("items/{name:alpha}", "items/ab1", None),
    ("items/{id:int:min(10)}", "items/9", None),
    ("items/{id:int:range(1,5)}", "items/5", {"id": "5"}),
    ("items/{id?}", "items", {}),
    ("items/{id:int?}", "items/3", {"id": "3"}),
    ("items/{id:int?}", "items/x", None),
    ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
    ("files/{*path}", "files", {}),
    ("files/{*path}", "files/a%20b/c", {"path": "a b/c"}),
    ("Items/{id}", "ITEMS/1", {"id": "1"}),
    ("items/{id}", "items/a%2Fb", {"id": "a/b"}),
    ("items/{id}", "items/1/extra", None),
    ("items/{id}", "items", None),
    ("reports/{name}.json", "reports/daily.json", {"name": "daily"}),
    ("reports/{name}.json", "reports/daily.xml", None),
    ("", "", {}),
])
def test_route_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert match(template, path) == expected


def test_route_precedence_order() -> None:
    literal = compile_route("files/readme").precedence
    mixed = compile_route("files/{name}.md").precedence
    constrained = compile_route("files/{id:int}").precedence
    free = compile_route("files/{name}").precedence
    catch_all = compile_route("files/{*path}").precedence
    assert literal < mixed < constrained < free < catch_all


@pytest.mark.parametrize(("template", "message"), [
    ("items/{id:regex(^a$)}", "does not support"),
    ("items/{*path}/more", "before the last segment"),
    ("items/{id?}/more", "before the last segment"),
    ("items/{id}/{ID}", "parameter name twice"),
    ("items//x", "empty segment"),
    ("items/{id=5}", "default value"),
    ("items/{bad name}", "invalid parameter name"),
    ("items/{id", "unbalanced brace"),
])
def test_route_invalid(template: str, message: str) -> None:
    with pytest.raises(HostStartError, match=message):
        compile_route(template)


KEYS = HostKeys.load({"masterKey": "master", "functionKeys": {"default": "host"},
                      "functions": {"enqueue": {"default": "own"}}}, None)


@pytest.mark.parametrize(("level", "function", "given", "expected"), [
    ("anonymous", "any", None, True),
    ("function", "any", None, False),
    ("function", "any", "", False),
    ("function", "any", "host", True),
    ("function", "any", "master", True),
    ("function", "any", "wrong", False),
    ("function", "enqueue", "own", True),
    ("function", "other", "own", False),
    ("admin", "any", "host", False),
    ("admin", "any", "master", True),
])
def test_is_authorized(level: str, function: str, given: str | None, expected: bool) -> None:
    assert is_authorized(KEYS, level, function, given) is expected


def test_keys_from_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"masterKey": "from-file", "functionKeys": {"default": "file-key"}}))
    keys = HostKeys.load({"masterKey": "given"}, keys_file)
    assert keys.master_key == "given"
    assert keys.function_keys == {"default": "file-key"}


def test_keys_invalid_hides_values(tmp_path: Path) -> None:
    with pytest.raises(HostStartError, match="functionKeys") as caught:
        HostKeys.load({"functionKeys": "secret-value"}, None)
    assert "secret-value" not in str(caught.value)


def test_keys_file_missing(tmp_path: Path) -> None:
    with pytest.raises(HostStartError, match="Cannot read the keys file"):
        HostKeys.load(None, tmp_path / "absent.json")


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:00:10", 10.0), ("00:01:00", 60.0), ("00:00:00.5", 0.5), ("1.02:00:00", 93600.0)])
def test_parse_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text) == seconds


def test_parse_timespan_invalid() -> None:
    with pytest.raises(ValueError, match="not a TimeSpan"):
        parse_timespan("10s")


def test_host_config_defaults(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text('{"version": "2.0"}')
    config = HostConfig.from_file(path)
    assert config.http.route_prefix == "api"
    assert config.queues.batch_size == 16
    assert config.queues.max_dequeue_count == 5
    assert config.queues.message_encoding == "base64"
    assert config.queues.max_polling_interval == 60.0


def test_host_config_values(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {"http": {"routePrefix": ""}, "queues": {
        "visibilityTimeout": "00:00:30", "messageEncoding": "None", "batchSize": 8}}}))
    config = HostConfig.from_file(path)
    assert config.http.route_prefix == ""
    assert config.queues.visibility_timeout == 30.0
    assert config.queues.message_encoding == "none"
    assert config.queues.batch_size == 8


def test_host_config_invalid(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"extensions": {"queues": {"batchSize": 64}}}))
    with pytest.raises(HostStartError, match="invalid settings"):
        HostConfig.from_file(path)


def test_message_encoding_round_trip() -> None:
    assert encode_message("héllo", "base64") == "aMOpbGxv"
    assert decode_message("aMOpbGxv", "base64") == "héllo".encode()
    assert encode_message(b"raw", "none") == "raw"
    assert decode_message("raw", "none") == b"raw"


def test_message_decoding_invalid_base64() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        decode_message("not base64!", "base64")
