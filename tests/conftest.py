"""Session fixtures live in tests/fixtures/, one module per dependency, loaded here."""

pytest_plugins = [
    "tests.fixtures.environment",
    "tests.fixtures.tls",
    "tests.fixtures.azurite",
    "tests.fixtures.keyvault",
    "tests.fixtures.fake_ado",
    "tests.fixtures.app_host",
]
