"""Names, ids, labels and descriptions of integrations and spaces.

An id is derived from a name. It appears unchanged in URL path segments, in Key Vault secret
names (`integration-<id>-pat`, `integration-<id>-webhook-secret`) and in Table Storage keys. So it
contains only lowercase ASCII letters, digits and single hyphens, and has at most 48 characters.

Which names give the same id (and so collide, which the API reports as a conflict):

- case, accents and Unicode compatibility forms do not count:
  `Déploiement`, `DEPLOIEMENT` and `ｄｅｐｌｏｉｅｍｅｎｔ` all give `deploiement`;
- whitespace, `_`, dashes, brackets, quotes, backslash and `. , : ; / ! ?` only separate
  words, so the kind and number of separators between two words do not count: `Prod ADO`,
  `prod  ado`, `PROD-ADO`, `prod_ado` and `prod.ado` all give `prod-ado`, and `(legacy) prod`
  gives `legacy-prod`;
- other characters without an ASCII equivalent (CJK, Cyrillic, `+`, `#`, `&`, `@`, emoji) are
  kept in a 40-bit hash appended to the id, so `C++` (`c-<hash>`) differs from `C` (`c`) and
  `本番` differs from `開発`. The hash covers the same separator-insensitive form, so `本番 ADO`
  and `本番-ADO` still collide;
- a name whose ASCII form is longer than 48 characters is cut to 37 and gets the hash, so two
  long names that share their start stay distinct.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit

from shared.errors import ValidationFailed
from shared.routes import ROUTE_PREFIX, WEBHOOK_ROUTE

MAX_NAME_LENGTH = 100
MAX_ID_LENGTH = 48
MAX_LABELS = 20
MAX_LABEL_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 4000

ROOT_SPACE_ID = "root"
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# Whitespace, connectors (`_`), dashes, brackets and quotes separate words, as do these other
# punctuation marks. Every other character without an ASCII form, `#`, `&` and `@` included,
# goes into the hash instead.
_SEPARATOR_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf"})
_SEPARATOR_PUNCTUATION = frozenset(".,:;/\\'\"!?")

_HASH_LENGTH = 10  # hex digits, 40 bits
_WHITESPACE_RUN = re.compile(r"\s+")

# Latin letters that NFKD does not split into an ASCII letter and a combining mark.
_LATIN_FOLDS = {
    "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ł": "l",
    "ŀ": "l", "ŧ": "t", "þ": "th", "ß": "ss", "ĸ": "k", "ŋ": "n",
}


def normalise_name(name: str) -> str:
    """Normalise a display name for comparison: NFKC, trimmed, single spaces, casefolded.

    Raises ValidationFailed(field="name") when the name is not a string, is empty, is longer
    than 100 characters (counted before casefolding) or contains control characters.
    """
    return _normalise(name, field="name", value_name="name")


def integration_id(name: str) -> str:
    """Derive the integration id from its name (the rules are in the module docstring)."""
    return _derive_id(_normalise(name, field="name", value_name="integration name"))


def space_id(name: str) -> str:
    """Derive a space id from its name, with the same rules as integration ids.

    A space named `Root` (in any case) gets the id `root` and so collides with the root space.
    """
    return _derive_id(_normalise(name, field="name", value_name="space name"))


def webhook_endpoint(public_base_url: str, integration_id: str) -> str:
    """Build the service-hook URL that Azure DevOps calls for one integration."""
    parts = urlsplit(public_base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"public base URL {public_base_url!r} is not an absolute http or https URL without query "
            "or fragment; set STACKHOOK_PUBLIC_BASE_URL to the address Azure DevOps can reach"
        )
    if not ID_PATTERN.fullmatch(integration_id) or len(integration_id) > MAX_ID_LENGTH:
        raise ValidationFailed(
            f"integration id {integration_id!r} is not a valid id; use the id returned when the "
            "integration was created",
            field="integrationId",
        )
    route = WEBHOOK_ROUTE.format(integration=integration_id)
    return f"{public_base_url.rstrip('/')}/{ROUTE_PREFIX}/{route}"


def normalise_labels(labels: list[str]) -> list[str]:
    """Trim labels, drop empty ones and drop case-insensitive repeats, keeping first spellings.

    Raises ValidationFailed(field="labels") for more than 20 labels or a label longer than
    64 characters, both counted after trimming and de-duplication.
    """
    if not isinstance(labels, list):
        raise ValidationFailed(
            f"labels must be a list of strings, got {type(labels).__name__}", field="labels"
        )
    result: list[str] = []
    seen: set[str] = set()
    for position, label in enumerate(labels):
        if not isinstance(label, str):
            raise ValidationFailed(
                f"label at position {position} must be a string, got {type(label).__name__}",
                field="labels",
            )
        trimmed = unicodedata.normalize("NFC", label).strip()
        if not trimmed:
            continue
        if _has_control_character(trimmed):
            raise ValidationFailed(
                f"label {trimmed!r} contains a control character; remove tabs, line breaks and "
                "other control characters",
                field="labels",
            )
        key = trimmed.casefold()
        if key in seen:
            continue
        if len(trimmed) > MAX_LABEL_LENGTH:
            raise ValidationFailed(
                f"label {trimmed[:20]!r}… is {len(trimmed)} characters long; a label may have at "
                f"most {MAX_LABEL_LENGTH} characters",
                field="labels",
            )
        seen.add(key)
        result.append(trimmed)
    if len(result) > MAX_LABELS:
        raise ValidationFailed(
            f"{len(result)} distinct labels were given; at most {MAX_LABELS} are allowed, so "
            "remove some",
            field="labels",
        )
    return result


def validate_description(text: str) -> str:
    """Return the Markdown description unchanged if it has at most 4000 characters."""
    if not isinstance(text, str):
        raise ValidationFailed(
            f"description must be a string, got {type(text).__name__}", field="description"
        )
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise ValidationFailed(
            f"description is {len(text)} characters long; at most {MAX_DESCRIPTION_LENGTH} are "
            "allowed, so shorten it",
            field="description",
        )
    return text


def _normalise(name: object, *, field: str, value_name: str) -> str:
    if not isinstance(name, str):
        raise ValidationFailed(f"{value_name} must be a string, got {type(name).__name__}", field=field)
    trimmed = unicodedata.normalize("NFKC", name).strip()
    if not trimmed:
        raise ValidationFailed(f"{value_name} is empty; give a name with at least one visible character",
                               field=field)
    if _has_control_character(trimmed):
        raise ValidationFailed(
            f"{value_name} {trimmed!r} contains a control character; remove tabs, line breaks and other "
            "control characters",
            field=field,
        )
    collapsed = _WHITESPACE_RUN.sub(" ", trimmed)
    if len(collapsed) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            f"{value_name} is {len(collapsed)} characters long; at most {MAX_NAME_LENGTH} are allowed",
            field=field,
        )
    return collapsed.casefold()


def _has_control_character(text: str) -> bool:
    # Category Cc is the C0 and C1 controls, tabs and line breaks included. Category Cs is lone
    # surrogates, which cannot be encoded as UTF-8.
    return any(unicodedata.category(character) in ("Cc", "Cs") for character in text)


def _derive_id(normalised: str) -> str:
    words, lossy = _fold_words(normalised)
    ascii_id = "-".join(word for word in (_ascii_only(w) for w in words) if word)
    if not lossy and 0 < len(ascii_id) <= MAX_ID_LENGTH:
        return ascii_id

    digest = hashlib.sha256("-".join(words).encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    keep = MAX_ID_LENGTH - _HASH_LENGTH - 1
    head = ascii_id[:keep].rstrip("-")
    return f"{head}-{digest}" if head else digest


def _fold_words(normalised: str) -> tuple[list[str], bool]:
    """Split into words at separators (see _SEPARATOR_CATEGORIES), with accents removed.

    Returns the words and whether any character has no ASCII equivalent.
    """
    words: list[str] = []
    current: list[str] = []
    lossy = False
    for character in unicodedata.normalize("NFKD", normalised):
        category = unicodedata.category(character)
        if category.startswith("M"):
            continue
        if category in _SEPARATOR_CATEGORIES or character in _SEPARATOR_PUNCTUATION or character.isspace():
            if current:
                words.append("".join(current))
                current = []
            continue
        folded = _LATIN_FOLDS.get(character, character)
        if not (folded.isascii() and folded.isalnum()):
            lossy = True
        current.append(folded)
    if current:
        words.append("".join(current))
    return words, lossy


def _ascii_only(word: str) -> str:
    return "-".join(part for part in re.split(r"[^a-z0-9]+", word) if part)
