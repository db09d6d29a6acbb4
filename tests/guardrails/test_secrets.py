import pytest

from pilothouse.guardrails import secrets


def kinds(text: str) -> set[tuple[str, str]]:
    hits = [f for f in secrets.scan(text, "input", {}) if f.score >= 0.5]
    return {(f.type, text[f.start : f.end]) for f in hits}


AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (f"aws_access_key_id = {AWS_ID}", "AWS_ACCESS_KEY_ID", AWS_ID),
        (f"token: {GITHUB}", "GITHUB_TOKEN", GITHUB),
        (f"SLACK={SLACK}", "SLACK_TOKEN", SLACK),
        (f'stripe.api_key = "{STRIPE}"', "STRIPE_KEY", STRIPE),
        ("postgresql://app:s3cr3t-pw@db.internal:5432/prod", "URL_PASSWORD", "s3cr3t-pw"),
        ("Server=db;User Id=sa;Password=Tr0ub4dor&3;", "CONNECTION_STRING_PASSWORD", "Tr0ub4dor&3"),
        ('password = "hunter2hunter2"', "CREDENTIAL_ASSIGNMENT", "hunter2hunter2"),
        (
            "Authorization: Bearer abcdef0123456789abcdef0123",
            "AUTH_HEADER",
            "abcdef0123456789abcdef0123",
        ),
    ],
)
def test_detects_credentials(text, kind, value):
    assert (kind, value) in kinds(text)


def test_private_key_block():
    text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    assert any(k == "PRIVATE_KEY" for k, _ in kinds(text))


def test_high_entropy_literal():
    text = 'CONFIG = {"x": "q8Zr2LmX0vT7Wk4Yp1Nc9Bd6Gh3Js5Fa"}'
    assert ("HIGH_ENTROPY_STRING", "q8Zr2LmX0vT7Wk4Yp1Nc9Bd6Gh3Js5Fa") in kinds(text)


@pytest.mark.parametrize(
    "text",
    [
        "password = os.environ['DB_PASSWORD']",
        'password = "${DB_PASSWORD}"',
        "def check_password(password):\n    return len(password) > 8",
        "SUPER_SECRET_VALUE = 'this is just a long message for users'",
        "See https://docs.python.org/3/library/json.html for details",
        "The token count of this sentence is small.",
    ],
)
def test_ignores_references_and_prose(text):
    assert kinds(text) == set()


def test_entropy():
    assert secrets.entropy("aaaa") == 0
    assert secrets.entropy("abcd") == 2
