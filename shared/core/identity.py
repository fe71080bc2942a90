"""The caller's identity, read from App Service Authentication (Easy Auth) request headers.

App Service sets these headers after it signs the caller in and strips them from incoming
requests, so they are trustworthy only when App Service Authentication is on. The caller of
`principal_from_headers` decides that from the settings.

`X-MS-CLIENT-PRINCIPAL` is base64-encoded JSON:
`{"auth_typ": ..., "name_typ": ..., "role_typ": ..., "claims": [{"typ": ..., "val": ...}]}`.
App Service maps some Microsoft Entra claim names to long URIs (the object id arrives as
`http://schemas.microsoft.com/identity/claims/objectidentifier`), and a claim with several
values, such as `groups`, appears once per value.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.errors import AuthenticationRequired

PRINCIPAL_HEADER = "x-ms-client-principal"
PRINCIPAL_ID_HEADER = "x-ms-client-principal-id"
PRINCIPAL_NAME_HEADER = "x-ms-client-principal-name"
PRINCIPAL_IDP_HEADER = "x-ms-client-principal-idp"

OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
NAME_IDENTIFIER_CLAIMS = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "sub")
PREFERRED_USERNAME_CLAIMS = ("preferred_username",)
EMAIL_CLAIMS = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "email")
UPN_CLAIMS = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn")
GROUP_CLAIMS = ("groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups")

_SUBJECT_CLAIMS = OBJECT_ID_CLAIMS + PREFERRED_USERNAME_CLAIMS + EMAIL_CLAIMS + UPN_CLAIMS + GROUP_CLAIMS


@dataclass(frozen=True)
class Claim:
    """One claim of the client principal, with its type as App Service delivers it."""

    typ: str
    val: str


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `subjects` contains every normalised value a role binding may name for this caller: the
    principal id and name, the object id, preferred user name, email, user principal name and
    each group id.
    """

    id: str
    name: str
    subjects: frozenset[str]
    identity_provider: str | None


def normalise_subject(value: str) -> str:
    """Normalise a role-binding subject: trimmed and casefolded, because object ids (GUIDs),
    user principal names and email addresses compare case-insensitively."""
    return value.strip().casefold()


def principal_from_headers(headers: Mapping[str, str]) -> Principal | None:
    """Build the caller's principal from Easy Auth headers, or return None when there are none.

    Header names are matched case-insensitively and blank headers count as missing. The `-ID`
    and `-NAME` headers alone make a valid principal. Raises AuthenticationRequired when
    `X-MS-CLIENT-PRINCIPAL` is not base64-encoded JSON of the expected shape, or when no
    identifier for the caller can be found.
    """
    lowered = {name.lower(): value.strip() for name, value in headers.items() if value and value.strip()}
    encoded = lowered.get(PRINCIPAL_HEADER)
    header_id = lowered.get(PRINCIPAL_ID_HEADER)
    header_name = lowered.get(PRINCIPAL_NAME_HEADER)
    if encoded is None and header_id is None and header_name is None:
        return None

    claims: tuple[Claim, ...] = ()
    name_type: str | None = None
    auth_type: str | None = None
    if encoded is not None:
        document = _decode_principal(encoded)
        claims = _claims(document)
        name_type = _optional_string(document, "name_typ")
        auth_type = _optional_string(document, "auth_typ")

    principal_id = header_id or _first(claims, OBJECT_ID_CLAIMS + NAME_IDENTIFIER_CLAIMS) or header_name
    if principal_id is None:
        raise AuthenticationRequired(
            "the App Service Authentication principal has no identifier (no X-MS-CLIENT-PRINCIPAL-ID header "
            "and no object id claim); sign in again or check the identity provider configuration"
        )
    principal_name = (
        header_name
        or (_first(claims, (name_type,)) if name_type else None)
        or _first(claims, PREFERRED_USERNAME_CLAIMS)
        or principal_id
    )

    subject_values = [principal_id, principal_name]
    subject_values.extend(claim.val for claim in claims if claim.typ in _SUBJECT_CLAIMS)
    return Principal(
        id=principal_id,
        name=principal_name,
        subjects=_normalised_subjects(subject_values),
        identity_provider=lowered.get(PRINCIPAL_IDP_HEADER) or auth_type,
    )


def _normalised_subjects(values: Iterable[str]) -> frozenset[str]:
    return frozenset(subject for subject in (normalise_subject(value) for value in values) if subject)


def _decode_principal(encoded: str) -> dict[str, object]:
    # Missing `=` padding is restored, so a value copied without it still decodes.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("it is not valid base64") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _malformed("its decoded value is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise _malformed(f"its JSON is a {type(document).__name__}, not an object")
    return document


def _claims(document: Mapping[str, object]) -> tuple[Claim, ...]:
    raw_claims = document.get("claims", [])
    if not isinstance(raw_claims, list):
        raise _malformed("its \"claims\" member is not a list")
    claims: list[Claim] = []
    for position, item in enumerate(raw_claims):
        if not isinstance(item, dict):
            raise _malformed(f"claim {position} is not an object")
        typ = item.get("typ")
        val = item.get("val")
        if not isinstance(typ, str):
            raise _malformed(f"claim {position} has no string \"typ\"")
        # A numeric claim value is kept as text instead of being rejected.
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise _malformed(f"claim {position} ({typ}) has no string \"val\"")
        claims.append(Claim(typ=typ, val=str(val)))
    return tuple(claims)


def _optional_string(document: Mapping[str, object], key: str) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _malformed(f"its \"{key}\" member is not a string")
    return value or None


def _first(claims: Iterable[Claim], types: tuple[str, ...]) -> str | None:
    for claim in claims:
        if claim.typ in types and claim.val.strip():
            return claim.val.strip()
    return None


def _malformed(reason: str) -> AuthenticationRequired:
    return AuthenticationRequired(
        f"the X-MS-CLIENT-PRINCIPAL header is malformed because {reason}; the header must be the base64-encoded "
        "JSON that App Service Authentication sets, so sign in again through App Service Authentication"
    )
