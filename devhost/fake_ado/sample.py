"""The sample organization that the service-hook payload files describe.

Project Widgets contains repository widget-service (default branch main) with the pushes to main, the
branch feature/retry and pull request 57 (two iterations, thread 311). Project "My Project" contains a
repository with a non-ASCII name, for URL-encoding checks.
"""

from __future__ import annotations

from devhost.fake_ado.model import CollectionState, Comment, Identity, Thread

SAMPLE_PAT = "sample-pat-0123456789abcdefghijklmnopqrstuvwxyz"
SAMPLE_COLLECTION_ID = "c0c0c0c0-0000-4000-8000-000000000001"
ALEX = Identity("0a1e0a1e-0000-4000-8000-00000000a1e0", "Alex Example", "alex.example@example.com")
BLAIR = Identity("0b1a0b1a-0000-4000-8000-00000000b1a0", "Blair Sample", "blair.sample@example.com")

PROJECT_ID = "11111111-2222-4333-8444-555555555555"
PROJECT_NAME = "Widgets"
REPOSITORY_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
REPOSITORY_NAME = "widget-service"
SPACED_PROJECT_ID = "22222222-3333-4444-8555-666666666666"
SPACED_PROJECT_NAME = "My Project"
ACCENTED_REPOSITORY_ID = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
ACCENTED_REPOSITORY_NAME = "dépôt infra"

# Commits named in the payload files, oldest first.
MAIN_BEFORE_PUSH = "1234abcd5678ef901234abcd5678ef901234abcd"
MAIN_FIX_NULL_CHECK = "3f1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"
MAIN_HEAD = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
FEATURE_FIRST = "c4c4c4c4d5d5d5d5e6e6e6e6f7f7f7f7a8a8a8a8"
FEATURE_HEAD = "abababababababababababababababababab0002"
MERGE_COMMIT = "d9d9d9d9e0e0e0e0f1f1f1f1a2a2a2a2b3b3b3b3"
PULL_REQUEST_ID = 57
THREAD_ID = 311

_NETWORK_V1 = 'module "vpc" {\n  source = "../../modules/vpc"\n  cidr   = "10.0.0.0/16"\n}\n'
_NETWORK_V2 = 'module "vpc" {\n  source = "../../modules/vpc"\n  cidr   = "10.1.0.0/16"\n}\n'
_APP_V1 = 'resource "null_resource" "app" {\n  triggers = { version = "1" }\n}\n'
_APP_V2 = 'resource "null_resource" "app" {\n  triggers = { version = "2" }\n}\n'
_VPC_V1 = 'variable "cidr" {\n  type = string\n}\n'
_VPC_V2 = 'variable "cidr" {\n  type        = string\n  description = "Address range of the VPC."\n}\n'
_VPC_V3 = _VPC_V2 + '\noutput "cidr" {\n  value = var.cidr\n}\n'


def seed_sample(state: CollectionState) -> None:
    """Load the sample organization into `state`."""
    state.add_pat(SAMPLE_PAT, ALEX)
    state.add_project(PROJECT_ID, PROJECT_NAME, description="Sample project of the payload files")
    state.add_repository(REPOSITORY_ID, REPOSITORY_NAME, PROJECT_ID)

    state.add_commit(REPOSITORY_ID, MAIN_BEFORE_PUSH, comment="Add network and app stacks", author=ALEX, files={
        "stacks/network/main.tf": _NETWORK_V1,
        "stacks/app/main.tf": _APP_V1,
        "modules/vpc/main.tf": _VPC_V1,
        "README.md": "# widget-service\n",
    })
    state.add_commit(REPOSITORY_ID, MAIN_FIX_NULL_CHECK, parents=[MAIN_BEFORE_PUSH], comment="Fix null check",
                     author=ALEX, files={"modules/vpc/main.tf": _VPC_V2})
    state.add_commit(REPOSITORY_ID, MAIN_HEAD, parents=[MAIN_FIX_NULL_CHECK], comment="Add retry to client",
                     author=ALEX, files={"stacks/network/main.tf": _NETWORK_V2}, branch="main")
    state.add_commit(REPOSITORY_ID, FEATURE_FIRST, parents=[MAIN_HEAD], comment="Retry widget calls",
                     author=ALEX, files={"stacks/app/main.tf": _APP_V2})
    state.add_commit(REPOSITORY_ID, FEATURE_HEAD, parents=[FEATURE_FIRST], comment="Bound the retry delay",
                     author=ALEX, files={"modules/vpc/main.tf": _VPC_V3,
                                         "stacks/app/variables.tf": 'variable "retries" {\n  default = 3\n}\n'},
                     branch="feature/retry")
    state.add_commit(REPOSITORY_ID, MERGE_COMMIT, parents=[MAIN_HEAD, FEATURE_HEAD],
                     comment="Merge pull request 57 from feature/retry into main", author=ALEX,
                     files={"stacks/app/main.tf": _APP_V2, "modules/vpc/main.tf": _VPC_V3,
                            "stacks/app/variables.tf": 'variable "retries" {\n  default = 3\n}\n'})

    pull_request = state.add_pull_request(PULL_REQUEST_ID, REPOSITORY_ID, source_ref="feature/retry",
                                          target_ref="main", created_by=ALEX, title="Add retry to widget client")
    pull_request.merge_commit = MERGE_COMMIT
    state.add_iteration(PULL_REQUEST_ID, source_commit=FEATURE_FIRST, target_commit=MAIN_HEAD, reason="create")
    state.add_iteration(PULL_REQUEST_ID, source_commit=FEATURE_HEAD, target_commit=MAIN_HEAD, reason="push")
    pull_request.threads[THREAD_ID] = Thread(THREAD_ID, [
        Comment(1, 0, "Plan for stacks/app changed 1 resource.", ALEX),
        Comment(2, 1, "/review please re-run the checks", BLAIR),
    ])

    state.add_project(SPACED_PROJECT_ID, SPACED_PROJECT_NAME, description="Project with a space in its name")
    state.add_repository(ACCENTED_REPOSITORY_ID, ACCENTED_REPOSITORY_NAME, SPACED_PROJECT_ID)
    state.add_commit(ACCENTED_REPOSITORY_ID, "e" * 40, comment="Initial commit", author=ALEX,
                     files={"stacks/édition/main.tf": _APP_V1}, branch="main")
