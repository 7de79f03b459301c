"""API keys -> tenants. Keys are stored only as SHA-256 hashes and compared in constant time.

No I/O: the caller reads the keys file and hands its text in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "na_"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9_\-.~+/=]{16,256})$")


class KeyConfigError(ValueError):
    """The configured keys are malformed; the message says which entry."""


def hash_key(key: str) -> str:
    """The SHA-256 hex digest stored in place of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random API key and its hash: give out the key, store the hash."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


@dataclass(frozen=True)
class ApiKeys:
    """The known key hashes and the tenant each belongs to."""

    entries: tuple[tuple[str, str], ...]  # (sha256 hex, tenant)

    @classmethod
    def parse(cls, *sources: str) -> ApiKeys:
        """Read `tenant:sha256hex` entries, separated by commas or newlines; `#` comments.

        Raises:
            KeyConfigError: an entry is not `tenant:sha256hex`.
        """
        entries: list[tuple[str, str]] = []
        for source in sources:
            for number, raw in enumerate(re.split(r"[,\n]", source), start=1):
                entry = raw.split("#", 1)[0].strip()
                if not entry:
                    continue
                tenant, _, digest = entry.partition(":")
                if not _TENANT.match(tenant) or not _HASH.match(digest.lower()):
                    raise KeyConfigError(
                        f"API key entry {number} is not `tenant:sha256hex` (64 hex digits)"
                    )
                entries.append((digest.lower(), tenant))
        return cls(tuple(entries))

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant of a `Bearer <key>` header value, or None for a missing/unknown key.

        Every stored hash is compared, match or not, so timing reveals nothing about which
        (or whether a) key nearly matched.
        """
        if not authorization:
            return None
        found = _BEARER.match(authorization.strip())
        if found is None:
            return None
        presented = hash_key(found.group(1)).encode("ascii")
        tenant: str | None = None
        for digest, owner in self.entries:
            if hmac.compare_digest(presented, digest.encode("ascii")):
                tenant = owner
        return tenant
