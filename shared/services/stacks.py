"""Registering, reading, changing and deleting stacks and modules.

A stack belongs to a space: reading it needs the read role on that space, and creating, changing
or deleting it needs the write role. Its repository is resolved once through the Azure DevOps
REST API with the personal access token of the stack's integration, and the project and
repository ids and names from its response are stored.

The first section contains the pure input rules (no I/O), the second the use cases.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.ado.client import AzureDevOpsClient
from shared.core.access import integration_usable_in, not_found, refusal
from shared.core.naming import (
    MAX_ID_LENGTH,
    ROOT_SPACE_ID,
    normalise_labels,
    normalise_name,
    validate_description,
)
from shared.core.naming import space_id as derive_id
from shared.errors import (
    AzureDevOpsError,
    Conflict,
    DependencyUnavailable,
    PreconditionFailed,
    StackhookError,
    ValidationFailed,
)
from shared.secrets import SecretStore
from shared.services.access import AccessContext
from shared.stack_models import (
    ModuleCreate,
    ModuleOut,
    ModuleUpdate,
    RepositoryRef,
    StackCreate,
    StackOut,
    StackUpdate,
)
from shared.storage.integrations import IntegrationRecord, IntegrationRepository
from shared.storage.names import pat_secret_name
from shared.storage.stacks import StackRecord, StackRepository

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str, str], AzureDevOpsClient]

# Input rules ------------------------------------------------------------------------------------

MAX_BRANCH_LENGTH = 250
MAX_PATH_LENGTH = 1024
MAX_GLOBS = 50
MAX_GLOB_LENGTH = 256
MAX_MODULE_PART_LENGTH = 64
BRANCH_PREFIX = "refs/heads/"

_MODULE_PART = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
# Characters that `git check-ref-format` forbids anywhere in a ref name.
_REF_FORBIDDEN = frozenset(" ~^:?*[\\")


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(character) in ("Cc", "Cs") for character in text)


def normalise_branch(value: str) -> str:
    """Return the short branch name (`main` for `main` or `refs/heads/main`) after checking it is a
    valid Git branch name, by the rules of `git check-ref-format`."""
    branch = value.strip()
    if branch.startswith(BRANCH_PREFIX):
        branch = branch[len(BRANCH_PREFIX):]
    if not branch:
        raise ValidationFailed("trackedBranch is empty; give a branch name such as 'main', or leave the field "
                               "out to track the repository's default branch.", field="trackedBranch")
    if branch.startswith("refs/"):
        raise ValidationFailed(f"trackedBranch {value!r} is not a branch; give a branch name such as 'main' or "
                               "'refs/heads/main'.", field="trackedBranch")
    if len(branch) > MAX_BRANCH_LENGTH:
        raise ValidationFailed(f"trackedBranch is {len(branch)} characters long; at most {MAX_BRANCH_LENGTH} "
                               "are allowed.", field="trackedBranch")
    components = branch.split("/")
    invalid = (
        _has_control_character(branch)
        or any(character in _REF_FORBIDDEN for character in branch)
        or ".." in branch or "@{" in branch or branch == "@"
        or branch.endswith(".")
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in components)
    )
    if invalid:
        raise ValidationFailed(
            f"trackedBranch {value!r} is not a valid Git branch name: it may not contain spaces, control "
            "characters, '~ ^ : ? * [ \\', '..' or '@{', empty or dot-leading path parts, or end with '.', "
            "'/' or '.lock'.", field="trackedBranch")
    return branch


def _path_segments(value: str, field: str, path_kind: str) -> list[str]:
    """Split a repository-relative path into its parts, dropping empty and `.` parts."""
    if _has_control_character(value):
        raise ValidationFailed(f"{field} {value!r} contains a control character; remove it.", field=field)
    if "\\" in value:
        raise ValidationFailed(f"{field} {value!r} contains a backslash; separate folders with '/'.", field=field)
    if len(value) > MAX_PATH_LENGTH:
        raise ValidationFailed(f"{field} is {len(value)} characters long; at most {MAX_PATH_LENGTH} are "
                               "allowed.", field=field)
    segments = [segment for segment in value.split("/") if segment not in ("", ".")]
    if ".." in segments:
        raise ValidationFailed(f"{field} {value!r} contains '..'; give {path_kind} inside the repository, relative "
                               "to its root.", field=field)
    return segments


def normalise_project_root(value: str) -> str:
    """Return the project root as a repository-relative folder such as `stacks/network`.

    Leading, trailing and repeated slashes and `.` parts are dropped; `""` is the repository root.
    """
    return "/".join(_path_segments(value.strip(), "projectRoot", "a folder"))


def normalise_globs(values: list[str]) -> list[str]:
    """Return the additional project globs, repository-relative, in order and without repeats.

    Supported syntax: `*` and `?` within a path part, `[...]` character classes, and `**` as a
    whole path part for any number of folders. Raises ValidationFailed(field="additionalProjectGlobs").
    """
    field = "additionalProjectGlobs"
    result: list[str] = []
    for position, raw in enumerate(values):
        pattern = raw.strip()
        if not pattern:
            raise ValidationFailed(f"the glob at position {position} is empty; remove it.", field=field)
        if len(pattern) > MAX_GLOB_LENGTH:
            raise ValidationFailed(f"the glob at position {position} is {len(pattern)} characters long; at most "
                                   f"{MAX_GLOB_LENGTH} are allowed.", field=field)
        if pattern.startswith("!"):
            raise ValidationFailed(f"glob {pattern!r} starts with '!'; exclusions are not supported, so list only "
                                   "the files that should trigger the stack.", field=field)
        if "{" in pattern or "}" in pattern:
            raise ValidationFailed(f"glob {pattern!r} contains a brace; alternatives are not supported, so give "
                                   "each alternative as its own glob.", field=field)
        segments = _path_segments(pattern, field, "a pattern")
        if not segments:
            raise ValidationFailed(f"glob {pattern!r} names no file; give a pattern such as 'modules/**/*.tf'.",
                                   field=field)
        for segment in segments:
            if "**" in segment and segment != "**":
                raise ValidationFailed(
                    f"glob {pattern!r} uses '**' inside the path part {segment!r}; '**' must be a whole path "
                    "part, as in 'modules/**/*.tf'.", field=field)
            if not _brackets_closed(segment):
                raise ValidationFailed(f"glob {pattern!r} has a '[' without a closing ']'.", field=field)
        normalised = "/".join(segments)
        if normalised not in result:
            result.append(normalised)
    if len(result) > MAX_GLOBS:
        raise ValidationFailed(f"{len(result)} distinct globs were given; at most {MAX_GLOBS} are allowed.",
                               field=field)
    return result


def _brackets_closed(segment: str) -> bool:
    position = 0
    while position < len(segment):
        if segment[position] == "[":
            # As in fnmatch, a ']' right after '[' (or after '[!') is part of the class.
            end = position + 1
            if end < len(segment) and segment[end] == "!":
                end += 1
            if end < len(segment) and segment[end] == "]":
                end += 1
            closing = segment.find("]", end)
            if closing < 0:
                return False
            position = closing
        position += 1
    return True


def validate_module_part(value: str, field: str) -> str:
    """Check a module's provider or name: lowercase letters, digits and inner hyphens, at most 64."""
    part = value.strip()
    if not _MODULE_PART.fullmatch(part) or len(part) > MAX_MODULE_PART_LENGTH:
        raise ValidationFailed(
            f"{field} {value!r} is invalid: use 1 to {MAX_MODULE_PART_LENGTH} lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit, such as 'azurerm' or 'network'.", field=field)
    return part


def stack_id(name: str, requested_id: str | None) -> str:
    """Return the given id after checking it, or derive one from the name like integration ids."""
    normalise_name(name)
    if requested_id is None:
        return derive_id(name)
    candidate = requested_id.strip()
    if not candidate or candidate != derive_id(candidate) or len(candidate) > MAX_ID_LENGTH:
        suggestion = derive_id(candidate) if candidate else derive_id(name)
        raise ValidationFailed(f"id {requested_id!r} is invalid: use lowercase letters, digits and single hyphens, at "
                               f"most {MAX_ID_LENGTH} characters, such as {suggestion!r}.", field="id")
    return candidate


@dataclass(frozen=True)
class ResolvedRepository:
    """The project and repository of a stack as Azure DevOps named them."""

    project_id: str
    project_name: str
    repository_id: str
    repository_name: str
    default_branch: str | None


def parse_repository(answer: dict[str, Any], reference: RepositoryRef) -> ResolvedRepository:
    """Read the ids, names and default branch from a GitRepository response."""
    project = answer.get("project")
    fields = (answer.get("id"), answer.get("name"),
              project.get("id") if isinstance(project, dict) else None,
              project.get("name") if isinstance(project, dict) else None)
    if not all(isinstance(value, str) and value for value in fields):
        raise AzureDevOpsError("bad_response", f"Azure DevOps returned repository {reference.repository!r} "
                               "without its id, name or project.")
    repository_id, repository_name, project_id, project_name = (str(value) for value in fields)
    default = answer.get("defaultBranch")
    return ResolvedRepository(project_id=project_id.lower(), project_name=project_name,
                              repository_id=repository_id.lower(), repository_name=repository_name,
                              default_branch=default if isinstance(default, str) and default else None)


def resolution_error(error: AzureDevOpsError, integration_id: str, reference: RepositoryRef) -> StackhookError:
    """Turn a failed repository lookup into the error returned to the caller: 422 naming the field to
    fix, or 503 when Azure DevOps failed or did not respond."""
    target = f"repository {reference.repository!r} in project {reference.project!r}"
    if error.kind == "not_found":
        return ValidationFailed(
            f"Azure DevOps found no {target} through integration {integration_id!r}. Check both names or ids; "
            "Azure DevOps also answers this way when the integration's token may not see the repository.",
            field="repository")
    if error.kind == "forbidden":
        return ValidationFailed(
            f"The token of integration {integration_id!r} may not read {target}. Give the token the Code (Read) "
            "scope and its account access to the repository, or choose another integration.", field="repository")
    if error.kind == "invalid_credentials":
        return ValidationFailed(
            f"Azure DevOps rejected the personal access token of integration {integration_id!r}: it is invalid, "
            f"expired or revoked. Update it with PATCH /api/integrations/{integration_id} "
            "(personalAccessToken), then repeat this request.", field="integrationId")
    if error.kind in ("rejected", "version_out_of_range"):
        return ValidationFailed(f"Azure DevOps rejected the request for {target}: {error}", field="repository")
    return DependencyUnavailable("Azure DevOps", f"looking up {target} through integration {integration_id!r} "
                                                f"failed ({error.kind}): {error}")


# Use cases --------------------------------------------------------------------------------------


class StackService:
    """The stack and module use cases, each checked against the caller's roles."""

    def __init__(self, repository: StackRepository, integrations: IntegrationRepository, secret_store: SecretStore,
                 client_factory: ClientFactory) -> None:
        self._repository = repository
        self._integrations = integrations
        self._secrets = secret_store
        self._client_factory = client_factory

    @property
    def repository(self) -> StackRepository:
        return self._repository

    # Reading

    @staticmethod
    def to_api(record: StackRecord) -> StackOut:
        fields: dict[str, Any] = {
            "id": record.id, "kind": record.kind, "name": record.name, "space_id": record.space_id,
            "integration_id": record.integration_id, "project_id": record.project_id,
            "project_name": record.project_name, "repository_id": record.repository_id,
            "repository_name": record.repository_name, "tracked_branch": record.tracked_branch,
            "project_root": record.project_root,
            "additional_project_globs": list(record.additional_project_globs), "labels": list(record.labels),
            "description": record.description, "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(), "created_by": record.created_by,
            "updated_by": record.updated_by, "etag": record.etag}
        if record.kind == "module":
            return ModuleOut(**fields, terraform_provider=record.terraform_provider or "",
                             module_name=record.module_name or "")
        return StackOut(**fields)

    def list_visible(self, context: AccessContext, kind: str) -> list[StackRecord]:
        readable = context.readable()
        return [record for record in self._repository.list(kind) if record.space_id in readable]

    def get(self, context: AccessContext, kind: str, stack_id_: str) -> StackRecord:
        """Load a stack the caller may read; a missing one and a hidden one both give 404."""
        record = self._repository.find(kind, stack_id_)
        if record is None or not context.has(record.space_id, "read"):
            raise not_found(f"{kind} {stack_id_!r}")
        return record

    # Writing

    def create(self, context: AccessContext, kind: str, body: StackCreate) -> StackRecord:
        new_id = stack_id(body.name, body.id)
        space = body.space_id.strip()
        self._require_write(context, space, f"create a {kind} in", f"space {space!r}")
        module_fields = self._module_fields(kind, body)
        project_root = normalise_project_root(body.project_root)
        globs = normalise_globs(body.additional_project_globs)
        labels = normalise_labels(body.labels)
        description = validate_description(body.description)
        branch = normalise_branch(body.tracked_branch) if body.tracked_branch is not None else None
        integration = self._usable_integration(context, body.integration_id, space)
        if self._repository.find(kind, new_id) is not None:
            raise Conflict(f"A {kind} with id {new_id!r} already exists. Choose another name, or give another id.",
                           field="id", code=f"{kind}_exists")
        resolved = self._resolve(integration, body.repository)
        tracked = branch or self._default_branch(resolved, body.repository)
        now = datetime.now(UTC)
        record = StackRecord(
            kind=kind, id=new_id, name=body.name.strip(), space_id=space, integration_id=integration.id,
            project_id=resolved.project_id, project_name=resolved.project_name,
            repository_id=resolved.repository_id, repository_name=resolved.repository_name,
            tracked_branch=tracked, project_root=project_root, additional_project_globs=tuple(globs),
            labels=tuple(labels), description=description, created_at=now, updated_at=now,
            created_by=context.actor, updated_by=context.actor, **module_fields)
        created = self._repository.create(record)
        logger.info("Created %s %s in space %s (integration %s, repository %s) by %s", kind, new_id, space,
                    integration.id, resolved.repository_id, context.actor)
        return created

    def update(self, context: AccessContext, kind: str, stack_id_: str, body: StackUpdate,
               if_match: str | None) -> StackRecord:
        record = self.get(context, kind, stack_id_)
        target = f"{kind} {record.id!r}"
        if not context.has(record.space_id, "write"):
            raise refusal(True, "change", target, needed="write")
        if if_match and if_match != record.etag:
            raise _stale(kind, record.id)
        if body.id is not None and body.id.strip() != record.id:
            raise ValidationFailed(f"The id of a {kind} cannot change. Create a new {kind} with the other id "
                                   "instead.", field="id")
        changes: dict[str, Any] = {"updated_at": datetime.now(UTC), "updated_by": context.actor}
        if body.name is not None:
            normalise_name(body.name)
            changes["name"] = body.name.strip()
        space = record.space_id
        if body.space_id is not None and body.space_id.strip() != record.space_id:
            space = body.space_id.strip()
            self._require_write(context, space, f"move {target} to", f"space {space!r}")
            changes["space_id"] = space
        if body.project_root is not None:
            changes["project_root"] = normalise_project_root(body.project_root)
        if body.additional_project_globs is not None:
            changes["additional_project_globs"] = tuple(normalise_globs(body.additional_project_globs))
        if body.labels is not None:
            changes["labels"] = tuple(normalise_labels(body.labels))
        if body.description is not None:
            changes["description"] = validate_description(body.description)
        if body.tracked_branch is not None:
            changes["tracked_branch"] = normalise_branch(body.tracked_branch)
        if isinstance(body, ModuleUpdate):
            if body.terraform_provider is not None:
                changes["terraform_provider"] = validate_module_part(body.terraform_provider, "terraformProvider")
            if body.module_name is not None:
                changes["module_name"] = validate_module_part(body.module_name, "moduleName")

        integration_changed = body.integration_id is not None and body.integration_id != record.integration_id
        if integration_changed or space != record.space_id:
            requested = body.integration_id if body.integration_id is not None else record.integration_id
            integration = self._usable_integration(context, requested, space)
        else:
            integration = None
        if integration_changed or body.repository is not None:
            if integration is None:
                integration = self._usable_integration(context, record.integration_id, space)
            # Without a new reference the stored ids are looked up again through the new integration.
            reference = body.repository or RepositoryRef(project=record.project_id, repository=record.repository_id)
            resolved = self._resolve(integration, reference)
            changes.update(integration_id=integration.id, project_id=resolved.project_id,
                           project_name=resolved.project_name, repository_id=resolved.repository_id,
                           repository_name=resolved.repository_name)
        updated = self._repository.replace(replace(record, **changes), if_match or record.etag, previous=record)
        logger.info("Updated %s %s by %s (fields: %s)", kind, record.id, context.actor,
                    ", ".join(sorted(set(changes) - {"updated_at", "updated_by"})) or "none")
        return updated

    def delete(self, context: AccessContext, kind: str, stack_id_: str, if_match: str | None = None) -> None:
        record = self.get(context, kind, stack_id_)
        if not context.has(record.space_id, "write"):
            raise refusal(True, "delete", f"{kind} {record.id!r}", needed="write")
        self._repository.delete(record, if_match)
        logger.info("Deleted %s %s by %s", kind, record.id, context.actor)

    # Helpers

    @staticmethod
    def _require_write(context: AccessContext, space: str, action: str, target: str) -> None:
        if not context.tree.contains(space):
            # Only callers who can read every space learn that a space does not exist. To anyone
            # else, a missing space looks like one they cannot see.
            if not context.has(ROOT_SPACE_ID, "read"):
                raise refusal(False, action, target)
            raise ValidationFailed(f"Space {space!r} does not exist. Create it first, or pick an existing space id "
                                   "from GET /api/spaces.", field="spaceId")
        if not context.has(space, "write"):
            raise refusal(context.has(space, "read"), action, target, needed="write")

    @staticmethod
    def _module_fields(kind: str, body: StackCreate) -> dict[str, str]:
        if not isinstance(body, ModuleCreate):
            return {}
        assert kind == "module"
        return {"terraform_provider": validate_module_part(body.terraform_provider, "terraformProvider"),
                "module_name": validate_module_part(body.module_name, "moduleName")}

    def _usable_integration(self, context: AccessContext, requested: str | None, space: str) -> IntegrationRecord:
        """Return the integration a stack in `space` may use: `requested`, or the default one when it is None."""
        integrations = self._integrations.list()
        usable = [record for record in integrations
                  if integration_usable_in(record.space_id, record.is_default, space, context.tree)]
        if requested is None:
            chosen = next((record for record in usable if record.is_default), None)
            problem = "No integrationId was given and there is no default integration."
        else:
            chosen = next((record for record in usable if record.id == requested.strip()), None)
            problem = (f"Integration {requested!r} cannot be used in space {space!r}: a stack may use the integration "
                       "of its own space, of an ancestor space, or the default integration.")
        if chosen is not None:
            return chosen
        if usable:
            names = ", ".join(f"{record.id} (default)" if record.is_default else record.id for record in usable)
            hint = f"Integrations usable in space {space!r}: {names}."
        else:
            hint = (f"No integration is usable in space {space!r}; ask an admin to register one in this space or an "
                    "ancestor space, or a default integration.")
        raise ValidationFailed(f"{problem} {hint}", field="integrationId")

    def _resolve(self, integration: IntegrationRecord, reference: RepositoryRef) -> ResolvedRepository:
        pat = self._secrets.get(pat_secret_name(integration.id), integration.pat_version)
        if pat is None:
            raise ValidationFailed(f"Integration {integration.id!r} has no personal access token stored. Set one with "
                                   f"PATCH /api/integrations/{integration.id}, then repeat this request.",
                                   field="integrationId")
        try:
            with self._client_factory(integration.organization_url, pat) as client:
                answer = client.get_repository(reference.project.strip(), reference.repository.strip())
            resolved = parse_repository(answer, reference)
        except AzureDevOpsError as error:
            logger.info("Resolving repository %s in project %s through integration %s failed: %s", reference.repository,
                        reference.project, integration.id, error.kind)
            raise resolution_error(error, integration.id, reference) from error
        if answer.get("isDisabled") is True:
            raise ValidationFailed(f"Repository {resolved.repository_name!r} is disabled in Azure DevOps, so it cannot "
                                   "be read. Enable it first, or choose another repository.", field="repository")
        return resolved

    @staticmethod
    def _default_branch(resolved: ResolvedRepository, reference: RepositoryRef) -> str:
        if resolved.default_branch is None:
            raise ValidationFailed(f"Repository {reference.repository!r} has no default branch yet (it may be empty). "
                                   "Set trackedBranch.", field="trackedBranch")
        return normalise_branch(resolved.default_branch)



def _stale(kind: str, stack_id_: str) -> PreconditionFailed:
    return PreconditionFailed(f"The {kind} {stack_id_!r} changed since you read it (ETag mismatch). Read it again, "
                              "reapply your change and send the new ETag in If-Match.", field="If-Match")
