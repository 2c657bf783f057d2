"""The sandbox's Klarna accounts: several merchant credentials, each with its region, as a shop
with one Klarna merchant id per region has (docs/sandbox.md, docs/klarna.md §6.1).

SANDBOX_ACCOUNTS lists them as `username:password[:region]`, comma-separated; the region is
`eu`, `na` or `oc` (callbacks/rules/regions.py), and an account without one sells any
currency. Unset, the sandbox has SANDBOX_USERNAME/SANDBOX_PASSWORD (any currency, as before
accounts) and the example shop's North America account, `sandbox-na`/`sandbox-na` (region
`na`), so the shipped example shop runs against it unchanged (callbacks/rules/shops/example.toml).

As at Klarna, an order belongs to the credentials that created it: another account's
credentials get the 404 of an unknown order on read, update and every Order Management call,
and an account's region refuses a currency it cannot sell with `400 BAD_VALUE`
(`Bad value: purchase_currency`). Pure: no Flask.
"""
from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from callbacks.rules import regions

EXAMPLE_NA = ("sandbox-na", "sandbox-na", regions.NA)


@dataclass(frozen=True)
class SandboxAccount:
    username: str
    password: str
    region: str | None = None  # None: any currency

    def __repr__(self) -> str:
        return f"SandboxAccount({self.username!r}, region={self.region!r})"


def parse(spec: str) -> list[SandboxAccount]:
    """`user:pass[:region],…`; a ValueError names the entry that is wrong."""
    out = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"SANDBOX_ACCOUNTS entry {parts[0]!r}… is not username:password[:region]")
        region = (parts[2].strip().lower() or None) if len(parts) == 3 else None
        if region is not None and region not in regions.CURRENCIES:
            raise ValueError(f"SANDBOX_ACCOUNTS entry {parts[0]!r}: region {region!r} is not one of "
                             f"{', '.join(regions.CURRENCIES)}")
        out.append(SandboxAccount(parts[0], parts[1], region))
    if len({a.username for a in out}) != len(out):
        raise ValueError("SANDBOX_ACCOUNTS names a username twice")
    return out


def from_config(config: Mapping) -> list[SandboxAccount]:
    spec = config.get("SANDBOX_ACCOUNTS")
    if spec:
        return parse(spec) if isinstance(spec, str) else list(spec)
    accounts = [SandboxAccount(config["SANDBOX_USERNAME"], config["SANDBOX_PASSWORD"])]
    if accounts[0].username != EXAMPLE_NA[0]:
        accounts.append(SandboxAccount(*EXAMPLE_NA))
    return accounts


def authenticate(accounts: Iterable[SandboxAccount], username: str, password: str) -> SandboxAccount | None:
    """The account of these credentials, compared in constant time; None when none matches."""
    found = None
    for account in accounts:
        if (hmac.compare_digest(username.encode(), account.username.encode())
                & hmac.compare_digest(password.encode(), account.password.encode())):
            found = account
    return found
