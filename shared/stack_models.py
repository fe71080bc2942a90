"""Request and response bodies of `/api/stacks` and `/api/modules` (JSON, camelCase fields).

A module is a stack with a Terraform provider and module name, so the module bodies extend the
stack bodies. Unknown fields are rejected, so `terraformProvider` sent to `/api/stacks` is a 422.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.api_models import ApiModel

StackKind = Literal["stack", "module"]


class RepositoryRef(ApiModel):
    project: str = Field(min_length=1, max_length=256, description="The Azure DevOps project: its name or id.")
    repository: str = Field(min_length=1, max_length=256,
                            description="The Git repository in that project: its name or id.")


class StackCreate(ApiModel):
    name: str = Field(description="Display name; the id is derived from it unless `id` is given.")
    id: str | None = Field(default=None, description="Lowercase letters, digits and single hyphens; "
                                                     "defaults to an id derived from the name.")
    space_id: str = Field(default="root", description="The space the stack belongs to; `root` by default.")
    integration_id: str | None = Field(default=None, description=(
        "The Azure DevOps integration: one of the stack's space, of an ancestor space, or the default "
        "integration. Defaults to the default integration."))
    repository: RepositoryRef = Field(description="Resolved once through Azure DevOps to project and "
                                                  "repository ids, which are stored.")
    tracked_branch: str | None = Field(default=None, description=(
        "Branch name such as `main` or `refs/heads/main`; defaults to the repository's default branch."))
    project_root: str = Field(default="", description="Repository-relative folder of the stack; `` for the root.")
    additional_project_globs: list[str] = Field(default_factory=list, description=(
        "Glob patterns, such as `modules/**/*.tf`, of files outside the project root that also affect "
        "the stack."))
    labels: list[str] = Field(default_factory=list)
    description: str = Field(default="")


class ModuleCreate(StackCreate):
    terraform_provider: str = Field(description="Provider part of the module address, such as `azurerm`.")
    module_name: str = Field(description="Name part of the module address, such as `network`.")


class StackUpdate(ApiModel):
    name: str | None = None
    id: str | None = Field(default=None, description="Cannot change; accepted only if equal to the current id.")
    space_id: str | None = Field(default=None, description="Moves the stack; needs write on both spaces.")
    integration_id: str | None = Field(default=None, description="Resolves the repository again with this "
                                                                 "integration.")
    repository: RepositoryRef | None = Field(default=None, description="Resolved again through Azure DevOps.")
    tracked_branch: str | None = Field(default=None, description="Kept when the repository changes and this "
                                                                 "is left out.")
    project_root: str | None = None
    additional_project_globs: list[str] | None = None
    labels: list[str] | None = None
    description: str | None = None


class ModuleUpdate(StackUpdate):
    terraform_provider: str | None = None
    module_name: str | None = None


class StackOut(ApiModel):
    id: str
    kind: StackKind
    name: str
    space_id: str
    integration_id: str
    project_id: str
    project_name: str
    repository_id: str
    repository_name: str
    tracked_branch: str
    project_root: str
    additional_project_globs: list[str]
    labels: list[str]
    description: str
    created_at: str
    updated_at: str
    created_by: str
    updated_by: str
    etag: str | None = None


class ModuleOut(StackOut):
    terraform_provider: str
    module_name: str


class StackList(ApiModel):
    stacks: list[StackOut]


class ModuleList(ApiModel):
    modules: list[ModuleOut]
