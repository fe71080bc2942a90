"""A fake Azure DevOps Server collection for local runs and tests.

`FakeAzureDevOps(certificates).start()` serves HTTPS on 127.0.0.1; `seed_sample()` loads the sample
organization of the payload files. See `server.py` for the checks it makes and the failures it can
inject.
"""

from devhost.fake_ado.model import CollectionState, Identity, ModelError
from devhost.fake_ado.sample import SAMPLE_PAT, seed_sample
from devhost.fake_ado.server import FakeAzureDevOps, RecordedRequest, error_body

__all__ = ["SAMPLE_PAT", "CollectionState", "FakeAzureDevOps", "Identity", "ModelError", "RecordedRequest",
           "error_body", "seed_sample"]
