"""Credentials in text: provider tokens, private keys, passwords in URLs and assignments.

Rules are modelled on detect-secrets' plugins and Nosey Parker's rule set (provider prefixes,
keyword assignments, connection strings), plus a Shannon-entropy test for long random-looking
strings next to a credential word. Findings cover the secret value only, so redaction keeps the
surrounding code readable.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.guardrails.model import Finding, Where

NAME = "secrets"


@dataclass(frozen=True)
class Rule:
    type: str
    regex: re.Pattern[str]
    score: float = 0.95
    group: int = 0


def _r(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _literal_prefix(rule: Rule) -> str:
    """The literal text every match of ``rule`` starts with (to skip rules cheaply), or ''."""
    pattern = rule.regex.pattern.removeprefix(_B)
    if rule.regex.flags & re.I:
        return ""
    m = re.match(r"[A-Za-z0-9_\-]{2,}", pattern)
    if m is None or pattern[m.end() : m.end() + 1] in ("?", "*", "{", "|"):
        return ""
    return m.group(0).replace("\\", "")


_B = r"(?<![A-Za-z0-9_])"  # token start: not inside a longer word
_E = r"(?![A-Za-z0-9_])"

# Provider tokens with a recognisable prefix (the strongest evidence there is).
PROVIDER_RULES: tuple[Rule, ...] = (
    Rule(
        "AWS_ACCESS_KEY_ID",
        _r(
            _B
            + r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}"
            + _E
        ),
        0.9,
    ),
    Rule(
        "OPENAI_KEY",
        _r(_B + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}" + _E),
    ),
    Rule("OPENAI_KEY", _r(_B + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}" + _E)),
    Rule("ANTHROPIC_KEY", _r(_B + r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{80,}" + _E)),
    Rule("STRIPE_KEY", _r(_B + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}" + _E)),
    Rule("GITHUB_TOKEN", _r(_B + r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}" + _E)),
    Rule("GITHUB_TOKEN", _r(_B + r"github_pat_[A-Za-z0-9_]{60,}" + _E)),
    Rule(
        "GITLAB_TOKEN",
        _r(_B + r"gl(?:pat|ptt|dt|rt|cbt|oas|soat|ffct|imt|agent)-[A-Za-z0-9_-]{20,}" + _E),
    ),
    Rule("SLACK_TOKEN", _r(_B + r"xox[abposer]-[A-Za-z0-9-]{10,}" + _E)),
    Rule("SLACK_TOKEN", _r(_B + r"xapp-\d-?[A-Za-z0-9/-]{10,}")),
    Rule(
        "SLACK_WEBHOOK", _r(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}")
    ),
    Rule(
        "TEAMS_WEBHOOK",
        _r(r"https://[\w.-]*(?:office|webhook\.office)\.com/webhook[b2]?/[\w@/-]{40,}"),
    ),
    Rule("GOOGLE_API_KEY", _r(_B + r"AIza[0-9A-Za-z_-]{35}")),
    Rule("GOOGLE_OAUTH_TOKEN", _r(_B + r"ya29\.[0-9A-Za-z_-]{20,}")),
    Rule("GOOGLE_CLIENT_SECRET", _r(_B + r"GOCSPX-[A-Za-z0-9_-]{28}")),
    Rule("SENDGRID_KEY", _r(_B + r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}")),
    Rule("TWILIO_KEY", _r(_B + r"SK[0-9a-f]{32}" + _E), 0.8),
    Rule("HUGGINGFACE_TOKEN", _r(_B + r"hf_[A-Za-z0-9]{30,}" + _E)),
    Rule("NPM_TOKEN", _r(_B + r"npm_[A-Za-z0-9]{36}" + _E)),
    Rule("PYPI_TOKEN", _r(_B + r"pypi-AgE[A-Za-z0-9_-]{50,}")),
    Rule("DOCKERHUB_TOKEN", _r(_B + r"dckr_pat_[A-Za-z0-9_-]{20,}")),
    Rule("DIGITALOCEAN_TOKEN", _r(_B + r"do[opr]_v1_[a-f0-9]{64}" + _E)),
    Rule("DATABRICKS_TOKEN", _r(_B + r"dapi[a-f0-9]{32}(?:-\d)?" + _E)),
    Rule("SHOPIFY_TOKEN", _r(_B + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _E)),
    Rule("HASHICORP_TOKEN", _r(_B + r"hv[sbr]\.[A-Za-z0-9_-]{24,}")),
    Rule("HASHICORP_TOKEN", _r(r"(?<![\w.])s\.[A-Za-z0-9]{24}" + _E), 0.7),
    Rule("ATLASSIAN_TOKEN", _r(_B + r"ATATT3[A-Za-z0-9_=-]{30,}")),
    Rule("BITBUCKET_TOKEN", _r(_B + r"ATBB[A-Za-z0-9_=.-]{28,}")),
    Rule("ARTIFACTORY_TOKEN", _r(_B + r"AKCp[A-Za-z0-9]{60,}")),
    Rule("NEWRELIC_KEY", _r(_B + r"NR(?:AK|AA|RA|II|JS)-[A-Za-z0-9]{20,}")),
    Rule("NEWRELIC_KEY", _r(_B + r"px-(?:dep|api)-[0-9a-f-]{36}")),
    Rule("POSTMAN_KEY", _r(_B + r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}")),
    Rule(
        "DOPPLER_TOKEN",
        _r(_B + r"dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,44}"),
    ),
    Rule("DROPBOX_TOKEN", _r(_B + r"sl\.[A-Za-z0-9_-]{60,}")),
    Rule("FACEBOOK_TOKEN", _r(_B + r"EAACEdEose0cBA[A-Za-z0-9]+")),
    Rule("MAPBOX_TOKEN", _r(_B + r"[spt]k\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{10,}")),
    Rule("SQUARE_TOKEN", _r(_B + r"sq0(?:atp|csp|idp)-[A-Za-z0-9_-]{22,43}")),
    Rule("TELEGRAM_BOT_TOKEN", _r(_B + r"\d{8,10}:AA[A-Za-z0-9_-]{32,33}" + _E)),
    Rule("TWITCH_TOKEN", _r(_B + r"live_\d{6,12}_[A-Za-z0-9]{30}" + _E)),
    Rule("AGE_SECRET_KEY", _r(_B + r"AGE-SECRET-KEY-1[0-9A-Z]{58}")),
    Rule("SOURCEGRAPH_TOKEN", _r(_B + r"sgp_(?:local_|[a-f0-9]{16}_)?[a-f0-9]{40}" + _E)),
    Rule("SEGMENT_TOKEN", _r(_B + r"sgp_[A-Za-z0-9]{64}" + _E)),
    Rule("RUBYGEMS_KEY", _r(_B + r"rubygems_[a-f0-9]{48}" + _E)),
    Rule("ADAFRUIT_KEY", _r(_B + r"aio_[A-Za-z0-9]{28}" + _E)),
    Rule("TAVILY_KEY", _r(_B + r"tvly-[A-Za-z0-9]{32}" + _E)),
    Rule("JINA_KEY", _r(_B + r"jina_[A-Za-z0-9]{60}" + _E)),
    Rule("FIRECRAWL_KEY", _r(_B + r"fc-[a-f0-9]{32}" + _E), 0.85),
    Rule("DTRACK_KEY", _r(_B + r"odt_[A-Za-z0-9]{32}" + _E)),
    Rule("STACKHAWK_KEY", _r(_B + r"hawk\.[A-Za-z0-9_-]{20}\.[A-Za-z0-9_-]{20}")),
    Rule("SALESFORCE_TOKEN", _r(_B + r"00[A-Za-z0-9]{13}![A-Za-z0-9_.]{96}")),
    Rule("KUBERNETES_BOOTSTRAP_TOKEN", _r(_B + r"[a-z0-9]{6}\.[a-z0-9]{16}" + _E), 0.6),
    Rule("JWT", _r(_B + r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.?[A-Za-z0-9_-]*"), 0.85),
    Rule("JWT", _r(_B + r"eyJ[A-Za-z0-9_=-]{30,}(?:\.[A-Za-z0-9_=-]{10,}){0,2}"), 0.75),
    Rule(
        "PRIVATE_KEY",
        _r(
            r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]{0,8000}?-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----)?"
        ),
    ),
    Rule(
        "PRIVATE_KEY",
        _r(
            r"LS0tLS1CRUdJTi[A-Za-z0-9+/]{4,}(?:UFJJVkFURSBLRVkt|BSSVZBVEUgS0VZL|QUklWQVRFIEtFWS)[A-Za-z0-9+/=]*"
        ),
    ),
    Rule("PRIVATE_KEY", _r(r"PuTTY-User-Key-File-\d: [\s\S]{0,2000}?Private-Lines: \d+")),
    Rule(
        "PASSWORD_HASH",
        _r(
            r"(?<![\w$])\$(?:1|2[abxy]?|5|6)\$(?:rounds=\d+\$)?[./A-Za-z0-9]{4,22}\$[./A-Za-z0-9]{22,86}"
        ),
        0.85,
    ),
    Rule("PASSWORD_HASH", _r(r"(?<![\w$])\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}"), 0.85),
    Rule(
        "PASSWORD_HASH",
        _r(r"\$krb5(?:asrep|tgs)\$\d+\$[^$\s]{1,120}?[$:][a-f0-9]{32}\$[a-f0-9]{40,}"),
        0.9,
    ),
    Rule("AZURE_STORAGE_KEY", _r(r"(?i:AccountKey)\s*=\s*([A-Za-z0-9+/]{40,}={0,2})"), 0.95, 1),
    Rule(
        "AZURE_CONNECTION_SECRET", _r(r"(?i:;\s*Secret)\s*=\s*([A-Za-z0-9+/]{20,}={0,2})"), 0.95, 1
    ),
    Rule(
        "AWS_SECRET_KEY",
        _r(
            r"(?i:aws.{0,20}?(?:secret|private).{0,20}?)[\"']?\s*(?:[:=]|=>)\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
        0.95,
        1,
    ),
    Rule(
        "WIREGUARD_KEY",
        _r(r"(?i:(?:PresharedKey|PrivateKey)\s*=\s*)([A-Za-z0-9+/]{42,43}=)"),
        0.95,
        1,
    ),
    Rule("HASHICORP_UNSEAL_KEY", _r(r"(?i:Unseal Key \d+:\s*)([A-Za-z0-9+/]{40,}={0,2})"), 0.95, 1),
)

_WORDS = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|"
    r"private[_-]?key|client[_-]?secret|auth[_-]?token|access[_-]?token|refresh[_-]?token|"
    r"token|credentials?|key|pat|license[_-]?key|login|sid)"
)

# Generic rules: credential words, URLs with userinfo, Authorization headers.
GENERIC_RULES: tuple[Rule, ...] = (
    Rule(
        "URL_PASSWORD",
        _r(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@\"'`]{1,64}:([^\s@/\"'`]{3,128})@[\w.-]+", re.I),
        0.9,
        1,
    ),
    Rule(
        "AUTH_HEADER",
        _r(r"(?i:\bauthorization\s*:\s*(?:bearer|basic|token|ssws)\s+)([A-Za-z0-9._~+/=-]{8,})"),
        0.9,
        1,
    ),
    Rule("AUTH_HEADER", _r(r"(?i:\bbearer\s+)([A-Za-z0-9._~+/-]{20,}=*)"), 0.85, 1),
    Rule("AUTH_HEADER", _r(r"(?i:authorization\W{0,3}\s*)([a-z]+_[a-f0-9]{32,})"), 0.85, 1),
    Rule(
        "CONNECTION_STRING_PASSWORD",
        _r(
            r"(?i:(?:^|[;\s\"'])(?:password|pwd)\s*=\s*)([^;\s\"']{1,80})(?=\s*(?:;|\"|'|$))",
            re.M,
        ),
        0.9,
        1,
    ),
    Rule(
        "PASSWORD_FLAG",
        _r(r"(?:^|\s)(?:-p|--password|-Password|--pass)[ =]([^\s\"'-][^\s\"']{2,80})", re.M),
        0.75,
        1,
    ),
    Rule(
        "CREDENTIAL_ASSIGNMENT",
        _r(
            rf"(?<![\w.-])(?i:[\w.-]*{_WORDS}[\w.-]*)[\"'\]]?\s*(?::=|=>|==|!=|=|:|\s)\s*"
            r"(?:[\w.]+\()?([\"'`]?)([^\s\"',;)<>{}\[\]][^\s\"'`,;)<>{}\[\]]{3,199})"
        ),
        0.0,  # scored by _assignment_score
        2,
    ),
    Rule(
        "HIGH_ENTROPY_STRING",
        _r(r"(?<=[\w.-])\s*[:=]\s*[\"']?([A-Za-z0-9+/_.=-]{20,200})(?![A-Za-z0-9+/_.=-])"),
        0.0,  # scored by _random_score
        1,
    ),
    Rule(
        "URL_PASSWORD",
        _r(r"(?:^|\s)(?:-u|--user)\s+[^\s:\"']{1,80}:([^\s\"']{3,128})", re.M),
        0.85,
        1,
    ),
    Rule(
        "PASSWORD_IN_PROSE",
        _r(r"(?i:\bpassword\b[^\n.]{0,40}?\bis\s*[:=]?\s*)[\"'`]([^\s\"'`]{3,64})[\"'`]"),
        0.85,
        1,
    ),
    Rule(
        "PASSWORD_IN_PROSE",
        _r(r"(?i:\bpassword\s+(?:is|=|:)\s+)([^\s\"'`.,]{6,64})(?=[\s.,]|$)"),
        0.6,
        1,
    ),
    Rule(
        "CREDENTIAL_CALL",
        _r(r"(?i:Credential\w*\s*\(\s*[\"'][^\"']{1,80}[\"']\s*,\s*)[\"']([^\"']{4,80})[\"']"),
        0.85,
        1,
    ),
    Rule(
        "CREDENTIAL_CALL",
        _r(
            r"(?i:DirectoryEntry\s*\([^)]{0,120}?,\s*[\"'][^\"']{1,80}[\"']\s*,\s*)[\"']([^\"']{4,80})[\"']"
        ),
        0.85,
        1,
    ),
)

# Values that stand for a secret instead of being one: variables, templates, masks.
_TEMPLATE_VALUES = re.compile(
    r"^(?:\$\{?\w+\}?|\$\(.*|%\(?\w+\)?s?|\{\{?[^}]*\}?\}?|<[^>]*>?|\*+|#+|x{3,}|\.{3,}|"
    r"null|none|nil|true|false|undefined|string|str|bytes|int|required|optional|input|"
    r"(?:self|os|env|process|request|config|settings|params|args|props|this)\b.*|"
    r"getenv.*|[\w.]*\(.*)$",
    re.I,
)
# Dummy values: still a credential in a config file, but weaker evidence.
_DUMMY_VALUES = re.compile(
    r"^(?:password|secret|changeme|your[\w-]*|example|test|admin|root)$", re.I
)
_STRONG_NAMES = (
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "private",
)
_HEX = re.compile(r"^[0-9a-fA-F-]+$")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def random_score(value: str) -> float:
    """0.6 to 0.8 when ``value`` looks like a random key (hex or base64 alphabet), else 0."""
    if len(value) < 20 or value.startswith("/") or "//" in value:
        return 0.0
    if value.count("/") >= 2 and re.search(r"\.[a-z]{2,4}/", value):
        return 0.0  # a path or URL
    kinds = (
        any(c.islower() for c in value),
        any(c.isupper() for c in value),
        any(c.isdigit() for c in value),
    )
    if sum(kinds) < 2 or not kinds[2]:
        return 0.0
    bits = entropy(value)
    if _HEX.match(value):
        return 0.7 if len(value.replace("-", "")) >= 32 and bits >= 3.2 else 0.0
    if bits >= 4.0:
        return 0.8
    return 0.6 if bits >= 3.7 else 0.0


def _assignment_score(name: str, value: str) -> float:
    """How likely ``name = value`` assigns a real credential."""
    if _TEMPLATE_VALUES.match(value) or value.lower() == name.lower():
        return 0.0
    if not any(c.isalnum() for c in value) or value.endswith((".", ":")):
        return 0.0
    lname = name.lower()
    strong = any(w in lname for w in _STRONG_NAMES)
    randomness = random_score(value)
    if randomness:
        return 0.9 if strong or "key" in lname else 0.7
    if not strong:
        return 0.0
    if _DUMMY_VALUES.match(value):
        return 0.6
    if value.isidentifier() and value.islower() and "_" in value:
        return 0.55  # password = some_variable_or_value
    return 0.75


_QUOTED_RANDOM = _r(r"[\"'`]([A-Za-z0-9+/_=.-]{20,200})[\"'`]")


def _score(rule: Rule, m: re.Match[str], text: str) -> float:
    value = m.group(rule.group)
    if rule.type == "CONNECTION_STRING_PASSWORD":
        return 0.0 if _TEMPLATE_VALUES.match(value) or "[" in value else rule.score
    if rule.type == "CREDENTIAL_ASSIGNMENT":
        quote = m.group(1)
        if not quote and not any(c in text[m.start() : m.start(1)] for c in ":=("):
            return 0.0  # "token count": words side by side, not an assignment
        after = text[m.end(2) : m.end(2) + 1]
        if quote and after.isspace():
            return 0.0  # a quoted value that goes on past a space is prose, not a key
        name = text[m.start() : m.start(1)].strip(" \t\"':=>![(")
        return _assignment_score(name, value)
    if rule.type == "HIGH_ENTROPY_STRING":
        return random_score(value)
    if rule.type == "URL_PASSWORD" and _TEMPLATE_VALUES.match(value):
        return 0.3
    return rule.score


_PROVIDERS = tuple((rule, _literal_prefix(rule)) for rule in PROVIDER_RULES)
# Lower-case substrings of which one must occur for a rule to be worth running (speed only).
_HINTS: dict[str, tuple[str, ...]] = {
    "URL_PASSWORD": ("://", "-u", "--user"),
    "AUTH_HEADER": ("authorization", "bearer"),
    "CONNECTION_STRING_PASSWORD": ("password", "pwd"),
    "PASSWORD_FLAG": ("-p", "--pass"),
    "HIGH_ENTROPY_STRING": (":", "="),
    "PASSWORD_IN_PROSE": ("password",),
    "CREDENTIAL_CALL": ("credential", "directoryentry"),
    "PASSWORD_HASH": ("$",),
    "AZURE_STORAGE_KEY": ("accountkey",),
    "AZURE_CONNECTION_SECRET": ("secret",),
    "AWS_SECRET_KEY": ("aws",),
    "WIREGUARD_KEY": ("key",),
    "HASHICORP_UNSEAL_KEY": ("unseal",),
    "HASHICORP_TOKEN": ("s.", "hv"),
    "STRIPE_KEY": ("_live_", "_test_"),
    "TELEGRAM_BOT_TOKEN": (":aa",),
    "SALESFORCE_TOKEN": ("!",),
    "KUBERNETES_BOOTSTRAP_TOKEN": (".",),
}
# Case-insensitive alternations are ~10x slower in `re`: search the lower-cased text instead
# (same offsets whenever lower-casing keeps the length, which is checked).
_KEYWORD = re.compile(_WORDS)
_KEYWORD_ANY_CASE = re.compile(rf"(?i){_WORDS}")
_NAME_CHARS = frozenset("_.-")


def _assignments(rule: Rule, text: str, lower: str) -> list[re.Match[str]]:
    """Matches of the assignment rule, tried only at identifiers around credential words."""
    out = []
    tried: set[int] = set()
    hits = _KEYWORD.finditer(lower) if len(lower) == len(text) else _KEYWORD_ANY_CASE.finditer(text)
    for hit in hits:
        start = hit.start()
        while start > 0 and hit.start() - start < 60:
            c = text[start - 1]
            if not (c.isalnum() or c in _NAME_CHARS):
                break
            start -= 1
        if start in tried:
            continue
        tried.add(start)
        m = rule.regex.match(text, start)
        if m is not None:
            out.append(m)
    return out


def scan(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Credentials in ``text``: provider tokens, keys, passwords, high-entropy literals."""
    out: list[Finding] = []
    lower = text.lower()
    for rule, prefix in _PROVIDERS:
        if prefix and prefix not in text:
            continue
        hints = _HINTS.get(rule.type)
        if hints and not any(h in lower for h in hints):
            continue
        signal = (f"rule:{rule.type.lower()}",)
        for m in rule.regex.finditer(text):
            out.append(
                Finding(NAME, rule.type, m.start(rule.group), m.end(rule.group), rule.score, signal)
            )
    for rule in GENERIC_RULES:
        hints = _HINTS.get(rule.type)
        if hints and not any(h in lower for h in hints):
            continue
        signal = (f"rule:{rule.type.lower()}",)
        if rule.type == "CREDENTIAL_ASSIGNMENT":
            matches = _assignments(rule, text, lower)
        else:
            matches = list(rule.regex.finditer(text))
        for m in matches:
            score = _score(rule, m, text)
            if score > 0:
                start, end = m.start(rule.group), m.end(rule.group)
                out.append(Finding(NAME, rule.type, start, end, score, signal))
    if options.get("entropy", True):
        for m in _QUOTED_RANDOM.finditer(text):
            score = random_score(m.group(1))
            if score:
                out.append(
                    Finding(NAME, "HIGH_ENTROPY_STRING", m.start(1), m.end(1), score, ("entropy",))
                )
    return out


__all__ = ["GENERIC_RULES", "PROVIDER_RULES", "entropy", "random_score", "scan"]
