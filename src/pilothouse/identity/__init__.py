"""Identity and access: users, passwords, API keys, principals, roles and scopes."""

from pilothouse.identity.access import ROLES, SCOPES, Principal
from pilothouse.identity.keys import ApiKey, KeyRing

__all__ = ["ROLES", "SCOPES", "ApiKey", "KeyRing", "Principal"]
