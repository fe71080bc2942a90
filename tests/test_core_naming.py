import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.naming import (
    MAX_ID_LENGTH,
    ROOT_SPACE_ID,
    integration_id,
    normalise_labels,
    normalise_name,
    space_id,
    validate_description,
    webhook_endpoint,
)
from shared.errors import ValidationFailed

KEY_VAULT_NAME = re.compile(r"^[0-9a-zA-Z-]+$")
ID_SHAPE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
HASH_SUFFIX = re.compile(r"-[0-9a-f]{10}$")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Prod ADO", "prod ado"),
        ("  Prod   ADO  ", "prod ado"),
        ("Prod\u00a0ADO", "prod ado"),  # no-break space
        ("Prod\u3000ADO", "prod ado"),  # ideographic space
        ("ＰＲＯＤ", "prod"),  # full-width letters
        ("Straße", "strasse"),
        ("Déploiement", "déploiement"),
        ("本番", "本番"),
        ("x" * 100, "x" * 100),
    ],
)
def test_normalise_name_valid(name: str, expected: str) -> None:
    assert normalise_name(name) == expected


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 101, "at most 100"),
        ("prod\tado", "control character"),
        ("prod\nado", "control character"),
        ("prod\x00", "control character"),
        ("prod\x85ado", "control character"),
        ("prod\ud800", "control character"),
        (42, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_normalise_name_rejected(name: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_name(name)
    assert caught.value.field == "name"
    assert fragment in caught.value.message


def test_normalise_name_length_before_casefold() -> None:
    # "ß" casefolds to "ss", so the limit is counted on what the user typed.
    assert normalise_name("ß" * 100) == "ss" * 100


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Prod ADO", "prod-ado"),
        ("prod  ado", "prod-ado"),
        ("PROD-ADO", "prod-ado"),
        ("prod_ado", "prod-ado"),
        ("prod.ado", "prod-ado"),
        ("--prod--ado--", "prod-ado"),
        ("(legacy) prod", "legacy-prod"),
        ("Déploiement", "deploiement"),
        ("DEPLOIEMENT", "deploiement"),
        ("ｄｅｐｌｏｉｅｍｅｎｔ", "deploiement"),
        ("Straße", "strasse"),
        ("Ærøskøbing", "aeroskobing"),
        ("Łódź", "lodz"),
        ("İstanbul", "istanbul"),
        ("team 42", "team-42"),
        ("x" * 48, "x" * 48),
    ],
)
def test_integration_id_ascii(name: str, expected: str) -> None:
    assert integration_id(name) == expected


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("本番", ""),
        ("Продакшн", ""),
        ("🚀", ""),
        ("本番 ADO", "ado-"),
        ("C++", "c-"),
        ("C#", "c-"),
        ("R&D", "r-d-"),
        ("ops@home", "ops-home-"),
        ("🚀 deploy", "deploy-"),
        ("x" * 49, "x" * 37 + "-"),
    ],
)
def test_integration_id_hashed(name: str, prefix: str) -> None:
    result = integration_id(name)
    assert result.startswith(prefix)
    assert re.fullmatch(r"[0-9a-f]{10}", result.removeprefix(prefix))
    assert len(result) <= MAX_ID_LENGTH


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Prod ADO", "prod  ado"),
        ("Prod ADO", "PROD-ADO"),
        ("Prod ADO", "prod_ado"),
        ("Déploiement", "Deploiement"),
        ("本番 ADO", "本番-ADO"),
        ("本番", " 本番 "),
        ("C++", "c++"),
    ],
)
def test_integration_id_collides(first: str, second: str) -> None:
    assert integration_id(first) == integration_id(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("C++", "C"),
        ("本番", "開発"),
        ("本番 ADO", "ADO"),
        ("prod ado", "prodado"),
        ("x" * 60 + "a", "x" * 60 + "b"),
        ("🚀 deploy", "🛠 deploy"),
    ],
)
def test_integration_id_distinct(first: str, second: str) -> None:
    assert integration_id(first) != integration_id(second)


def test_integration_id_stable() -> None:
    # The hash must not depend on the process (no salted hash()), or stored ids break.
    assert integration_id("本番") == integration_id("本番")
    assert integration_id("本番") == "e30383028e"


@pytest.mark.parametrize("name", ["", " ", "x" * 101, "a\tb"])
def test_integration_id_rejected(name: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        integration_id(name)
    assert caught.value.field == "name"
    assert "integration name" in caught.value.message


@given(st.text(min_size=1, max_size=100))
def test_integration_id_key_vault_safe(name: str) -> None:
    try:
        result = integration_id(name)
    except ValidationFailed:
        return
    assert ID_SHAPE.fullmatch(result)
    assert len(result) <= MAX_ID_LENGTH
    for secret_name in (f"integration-{result}-pat", f"integration-{result}-webhook-secret"):
        assert KEY_VAULT_NAME.fullmatch(secret_name)
        assert len(secret_name) <= 127


@given(st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=48))
def test_integration_id_plain_ascii_unhashed(name: str) -> None:
    assert integration_id(name) == name.lower()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Platform Team", "platform-team"),
        ("Root", ROOT_SPACE_ID),
        ("équipe", "equipe"),
    ],
)
def test_space_id_values(name: str, expected: str) -> None:
    assert space_id(name) == expected


def test_space_id_rejected() -> None:
    with pytest.raises(ValidationFailed) as caught:
        space_id("")
    assert caught.value.field == "name"
    assert "space name" in caught.value.message


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://stackhook.example.com", "https://stackhook.example.com/api/webhooks/azure-devops/prod-ado"),
        ("https://stackhook.example.com/", "https://stackhook.example.com/api/webhooks/azure-devops/prod-ado"),
        ("http://127.0.0.1:7071", "http://127.0.0.1:7071/api/webhooks/azure-devops/prod-ado"),
        ("https://example.com/hooks", "https://example.com/hooks/api/webhooks/azure-devops/prod-ado"),
    ],
)
def test_webhook_endpoint_built(base: str, expected: str) -> None:
    assert webhook_endpoint(base, "prod-ado") == expected


@pytest.mark.parametrize("bad_id", ["Prod-ADO", "prod--ado", "-prod", "prod/ado", "", "x" * 49])
def test_webhook_endpoint_bad_id(bad_id: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        webhook_endpoint("https://stackhook.example.com", bad_id)
    assert caught.value.field == "integrationId"


@pytest.mark.parametrize("base", ["stackhook.example.com", "ftp://example.com", "https://example.com/?a=1"])
def test_webhook_endpoint_bad_base(base: str) -> None:
    with pytest.raises(ValueError, match="STACKHOOK_PUBLIC_BASE_URL"):
        webhook_endpoint(base, "prod-ado")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([], []),
        ([" prod ", "", "  ", "team-a"], ["prod", "team-a"]),
        (["Prod", "prod", "PROD", "dev"], ["Prod", "dev"]),
        (["b", "a", "B"], ["b", "a"]),
        (["Équipe", "équipe"], ["Équipe"]),
        (["x" * 64], ["x" * 64]),
        ([f"label-{index}" for index in range(20)], [f"label-{index}" for index in range(20)]),
        (["same"] * 30, ["same"]),
    ],
)
def test_normalise_labels_valid(labels: list[str], expected: list[str]) -> None:
    assert normalise_labels(labels) == expected


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ([f"label-{index}" for index in range(21)], "at most 20"),
        (["x" * 65], "at most 64"),
        (["ok", 3], "must be a string"),
        ("prod", "must be a list"),
        (["a\tb"], "control character"),
    ],
)
def test_normalise_labels_rejected(labels: list[str], fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_labels(labels)
    assert caught.value.field == "labels"
    assert fragment in caught.value.message


@pytest.mark.parametrize("text", ["", "# Title\n\n* item  \n", "x" * 4000, "  padded  "])
def test_validate_description_kept(text: str) -> None:
    assert validate_description(text) == text


@pytest.mark.parametrize(("text", "fragment"), [("x" * 4001, "at most 4000"), (None, "must be a string")])
def test_validate_description_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_description(text)
    assert caught.value.field == "description"
    assert fragment in caught.value.message
