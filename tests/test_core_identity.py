import base64
import json

import pytest

from shared.core.identity import Principal, normalise_subject, principal_from_headers
from shared.errors import AuthenticationRequired

OBJECT_ID = "5B5450DB-EB26-4C1A-981C-BA1D25F0483D"
GROUP_A = "F08BBBEA-B793-4A36-A5FC-136C18D8AA8F"
GROUP_B = "14a87ffa-0801-49bf-a515-3d259a2a9f8f"


def encode(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")


def entra_principal(*claims: tuple[str, object]) -> str:
    return encode({
        "auth_typ": "aad",
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        "claims": [{"typ": typ, "val": val} for typ, val in claims],
    })


ENTRA_USER = entra_principal(
    ("http://schemas.microsoft.com/identity/claims/objectidentifier", OBJECT_ID),
    ("preferred_username", "Alex@Contoso.com"),
    ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "alex.w@contoso.com"),
    ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "alexw@contoso.onmicrosoft.com"),
    ("groups", GROUP_A),
    ("groups", GROUP_B),
    ("name", "Alex Wilber"),
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Alex@Contoso.COM ", "alex@contoso.com"),
        (OBJECT_ID, OBJECT_ID.lower()),
        ("local-admin", "local-admin"),
        ("", ""),
    ],
)
def test_normalise_subject_values(value: str, expected: str) -> None:
    assert normalise_subject(value) == expected


def test_principal_full_entra() -> None:
    principal = principal_from_headers({
        "X-MS-CLIENT-PRINCIPAL": ENTRA_USER,
        "X-MS-CLIENT-PRINCIPAL-ID": OBJECT_ID,
        "X-MS-CLIENT-PRINCIPAL-NAME": "Alex@Contoso.com",
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    })
    assert principal == Principal(
        id=OBJECT_ID,
        name="Alex@Contoso.com",
        subjects=frozenset({
            OBJECT_ID.lower(),
            "alex@contoso.com",
            "alex.w@contoso.com",
            "alexw@contoso.onmicrosoft.com",
            GROUP_A.lower(),
            GROUP_B.lower(),
        }),
        identity_provider="aad",
    )


def test_principal_display_name_not_subject() -> None:
    # Display names are not unique, so a binding must never match one.
    principal = principal_from_headers({"X-MS-CLIENT-PRINCIPAL": ENTRA_USER})
    assert principal is not None
    assert "alex wilber" not in principal.subjects


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ms-client-principal": ENTRA_USER},
        {"X-Ms-Client-Principal": ENTRA_USER},
        {"X-MS-CLIENT-PRINCIPAL": ENTRA_USER.rstrip("=")},
        {"X-MS-CLIENT-PRINCIPAL": f"  {ENTRA_USER}  "},
    ],
)
def test_principal_from_claims_only(headers: dict[str, str]) -> None:
    principal = principal_from_headers(headers)
    assert principal is not None
    assert principal.id == OBJECT_ID
    assert principal.name == "alex.w@contoso.com"  # the claim named by name_typ
    assert principal.identity_provider == "aad"
    assert GROUP_B in principal.subjects


@pytest.mark.parametrize(
    ("claims", "expected_id", "expected_subject"),
    [
        ((("oid", OBJECT_ID),), OBJECT_ID, OBJECT_ID.lower()),
        ((("upn", "Alex@Contoso.com"), ("oid", OBJECT_ID)), OBJECT_ID, "alex@contoso.com"),
        ((("email", "Alex@Contoso.com"), ("sub", "abc")), "abc", "alex@contoso.com"),
        ((("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", GROUP_A), ("oid", "x")), "x",
         GROUP_A.lower()),
        ((("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "nid"),), "nid", "nid"),
    ],
)
def test_principal_short_claim_names(claims: tuple[tuple[str, str], ...], expected_id: str,
                                     expected_subject: str) -> None:
    principal = principal_from_headers({"X-MS-CLIENT-PRINCIPAL": entra_principal(*claims)})
    assert principal is not None
    assert principal.id == expected_id
    assert expected_subject in principal.subjects


@pytest.mark.parametrize(
    ("headers", "expected_id", "expected_name", "expected_subjects"),
    [
        ({"X-MS-CLIENT-PRINCIPAL-ID": OBJECT_ID, "X-MS-CLIENT-PRINCIPAL-NAME": "Alex@Contoso.com"}, OBJECT_ID,
         "Alex@Contoso.com", {OBJECT_ID.lower(), "alex@contoso.com"}),
        ({"x-ms-client-principal-id": OBJECT_ID}, OBJECT_ID, OBJECT_ID, {OBJECT_ID.lower()}),
        ({"x-ms-client-principal-name": "local-admin"}, "local-admin", "local-admin", {"local-admin"}),
    ],
)
def test_principal_plain_headers(headers: dict[str, str], expected_id: str, expected_name: str,
                                 expected_subjects: set[str]) -> None:
    principal = principal_from_headers(headers)
    assert principal is not None
    assert principal.id == expected_id
    assert principal.name == expected_name
    assert principal.subjects == frozenset(expected_subjects)
    assert principal.identity_provider is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {"X-MS-CLIENT-PRINCIPAL": "", "X-MS-CLIENT-PRINCIPAL-ID": "  "},
        {"X-MS-CLIENT-PRINCIPAL-IDP": "aad"},
    ],
)
def test_principal_missing(headers: dict[str, str]) -> None:
    assert principal_from_headers(headers) is None


@pytest.mark.parametrize(
    ("encoded", "fragment"),
    [
        ("not base64!", "not valid base64"),
        ("%%%%", "not valid base64"),
        (base64.b64encode(b"\xff\xfe").decode(), "not UTF-8 JSON"),
        (base64.b64encode(b"{not json").decode(), "not UTF-8 JSON"),
        (encode([1, 2]), "is a list, not an object"),
        (encode("text"), "is a str, not an object"),
        (encode({"claims": {"typ": "oid"}}), "\"claims\" member is not a list"),
        (encode({"claims": ["oid"]}), "claim 0 is not an object"),
        (encode({"claims": [{"val": "x"}]}), "claim 0 has no string \"typ\""),
        (encode({"claims": [{"typ": "oid"}]}), "claim 0 (oid) has no string \"val\""),
        (encode({"claims": [{"typ": "oid", "val": ["x"]}]}), "has no string \"val\""),
        (encode({"claims": [{"typ": "oid", "val": True}]}), "has no string \"val\""),
        (encode({"auth_typ": 3, "claims": []}), "\"auth_typ\" member is not a string"),
        (encode({"claims": []}), "no identifier"),
        (encode({"claims": [{"typ": "groups", "val": GROUP_A}]}), "no identifier"),
    ],
)
def test_principal_malformed(encoded: str, fragment: str) -> None:
    with pytest.raises(AuthenticationRequired) as caught:
        principal_from_headers({"X-MS-CLIENT-PRINCIPAL": encoded})
    assert fragment in caught.value.message
    assert caught.value.status == 401


def test_principal_malformed_despite_id() -> None:
    # A broken principal header is an error even when the plain headers would do.
    with pytest.raises(AuthenticationRequired):
        principal_from_headers({"X-MS-CLIENT-PRINCIPAL": "not base64!", "X-MS-CLIENT-PRINCIPAL-ID": OBJECT_ID})


def test_principal_numeric_claim_value() -> None:
    principal = principal_from_headers({"X-MS-CLIENT-PRINCIPAL": encode({"claims": [{"typ": "oid", "val": 10000}]})})
    assert principal is not None
    assert principal.id == "10000"


def test_principal_header_id_wins() -> None:
    principal = principal_from_headers({
        "X-MS-CLIENT-PRINCIPAL": entra_principal(("oid", "from-claim")),
        "X-MS-CLIENT-PRINCIPAL-ID": "from-header",
    })
    assert principal is not None
    assert principal.id == "from-header"
    assert {"from-header", "from-claim"} <= principal.subjects
