"""Which Klarna account a call goes to (docs/design.md §4.1): the shop file's
`[klarna_accounts.<name>]`, resolved against the environment once at start-up.

A merchant often holds one Klarna merchant id per country or per region, and Klarna's regions
(Europe, North America, Oceania) are separate API hosts with separate credentials
(docs/klarna.md §6.1). Each market names its account; a market that names none, and every
market of a shop file without accounts, sells through the environment's one account
(KLARNA_API_URL, KLARNA_USERNAME, KLARNA_PASSWORD) — the name `None` everywhere below, in the
session's state and in the database.

Every Klarna order belongs to the account that created it: the session records the account
with the order (state `klarna.account`, column `sessions.klarna_account`), a completed order
keeps it (`klarna_orders.klarna_account`), and push and notification URLs carry it
(`klarna_account=`), so every later Checkout or Order Management call for that order goes
there, whatever market the session has moved to since.

Passwords come from the environment variable each account names in `password_env`, never from
the file. A missing one stops start-up naming the file and key; production also refuses a weak
one, an account URL that is not https, and a password that is also one of the service's own
secrets, by the rules config.py applies to KLARNA_PASSWORD.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import settings
from callbacks.rules import regions
from callbacks.rules.shop import Shop, ShopFileError, region_problem

ENVIRONMENT = None  # the name of the environment's account
# The service's own secrets, which no Klarna password may also be (whoever holds one would
# hold both).
OWN_SECRETS = ("KCO_CALLBACK_SECRET", "KCO_API_KEY", "KCO_SUPPORT_PASSWORD")


class UnknownAccount(LookupError):
    """A name that is not one of the shop's Klarna accounts (a stale or forged URL)."""


@dataclass(frozen=True)
class Account:
    """A resolved account: where its calls go, and as whom."""

    name: str | None
    api_url: str
    username: str
    password: str
    region: str | None

    def __repr__(self) -> str:  # never the password, not even in a traceback
        return f"Account({self.name!r}, {self.api_url!r}, {self.username!r}, region={self.region!r})"

    @property
    def label(self) -> str:
        return self.name if self.name is not None else "the environment's account"


class Accounts:
    """The shop's accounts by name (None: the environment's), read-only once built."""

    def __init__(self, accounts: Mapping[str | None, Account]):
        self._accounts = dict(accounts)

    def get(self, name: str | None) -> Account:
        try:
            return self._accounts[name]
        except KeyError:
            raise UnknownAccount(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._accounts

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())

    def named(self, name: str | None) -> str | None:
        """A name from outside (a URL): one of ours, else UnknownAccount. Blank is None."""
        name = name or None
        if name not in self._accounts:
            raise UnknownAccount(name)
        return name


def _setting(config: Any, name: str) -> Any:
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def password_from(variable: str) -> str | None:
    """The value of the account's `password_env`, None when unset or blank. A variable that
    settings.py declares (the example shop's) has its declared default, as KLARNA_PASSWORD has
    the sandbox's; any other is the merchant's own name and is read as given."""
    if variable in settings.BY_NAME:
        return settings.text(variable)
    value = os.environ.get(variable)  # a name from the shop file (tests/test_settings.py)
    return None if value is None or not value.strip() else value


def resolve(shop: Shop, config: Any, production: bool = False) -> Accounts:
    """Every account the shop may call, checked; raises ShopFileError (a missing password, a
    region that cannot sell a market's currency) or, with `production` (config.py's
    ProductionConfig asks), config.ConfigError for production's rules."""
    default_url = str(_setting(config, "KLARNA_API_URL") or "").rstrip("/")
    out: dict[str | None, Account] = {ENVIRONMENT: Account(
        ENVIRONMENT, default_url, str(_setting(config, "KLARNA_USERNAME") or ""),
        str(_setting(config, "KLARNA_PASSWORD") or ""), regions.of_url(default_url))}
    for account in shop.klarna_accounts.values():
        api_url = account.api_url or default_url
        region = account.region
        if account.api_url is None:
            # KLARNA_API_URL's environment, the account's region: Klarna's host of that region
            # (live or playground as KLARNA_API_URL is); the sandbox or a stand-in as it is.
            api_url = regions.twin(default_url, region)
            region = regions.of_url(api_url) or region
            _check_markets(shop, account.name, region)
        password = password_from(account.password_env)
        if password is None:
            raise ShopFileError(shop.source, f"{account.key}.password_env",
                                f"the environment variable {account.password_env} is not set (or "
                                "blank); it must hold this account's Klarna API password")
        out[account.name] = Account(account.name, api_url, account.username, password, region)
    _check_environment_markets(shop, out[ENVIRONMENT])
    if production:
        _check_production(shop, config, out)
    return Accounts(out)


def _check_environment_markets(shop: Shop, environment: Account) -> None:
    """The markets on the environment's account against KLARNA_API_URL's region. One of
    Klarna's regional hosts has a region, and a market whose currency it does not sell is
    refused as for a named account: Klarna would refuse every order of it. Any other host (the
    sandbox, a stand-in) has none, so nothing can be known here and nothing is refused: that
    host answers for itself (the sandbox's environment account sells any currency)."""
    if environment.region is None:
        return
    for market in shop.markets.values():
        problem = market.klarna_account is None and region_problem(market, environment.region)
        if problem:
            raise ShopFileError(shop.source, f"markets.{market.country}.currency",
                                f"{problem}; the market has no klarna_account, so it sells "
                                f"through the environment's account at KLARNA_API_URL "
                                f"{environment.api_url}: give it a klarna_account of a region "
                                "that sells its currency")


def _check_markets(shop: Shop, name: str, region: str | None) -> None:
    for market in shop.markets.values():
        problem = market.klarna_account == name and region_problem(market, region)
        if problem:
            raise ShopFileError(shop.source, f"markets.{market.country}.klarna_account",
                                f"{problem} (klarna_accounts.{name}, at KLARNA_API_URL)")


def _check_production(shop: Shop, config: Any, accounts: Mapping[str | None, Account]) -> None:
    """The rules config.py holds KLARNA_API_URL and KLARNA_PASSWORD to, for every account."""
    from config import SECRETS, ConfigError, folded, weak_secret

    # Every value already in use, folded as config.py compares secrets → the first variable
    # holding it: our own secrets, and the Klarna passwords seen so far. Klarna issues each
    # account its own API password: one account's in another's variable (the environment's
    # KLARNA_PASSWORD, or an earlier [klarna_accounts] entry's) is a copy and paste, and would
    # be sent to the wrong account.
    own: dict[str, str] = {}
    for name in OWN_SECRETS:
        value = _setting(config, name)
        if value:
            own.setdefault(folded(str(value)), name)
    env_password = _setting(config, "KLARNA_PASSWORD")
    klarna = {folded(str(env_password)): "KLARNA_PASSWORD"} if env_password else {}
    for spec in shop.klarna_accounts.values():
        account = accounts[spec.name]
        where = f"{spec.key} in {shop.source}"
        parts = urlsplit(account.api_url)
        if parts.scheme != "https" or not parts.hostname:
            origin = "api_url" if spec.api_url else "KLARNA_API_URL (the account has no api_url)"
            raise ConfigError(f"KCO_ENV=production refuses {where}: its {origin} {account.api_url!r} "
                              "is not https://, and the Klarna password travels in every request")
        published = set(SECRETS["KLARNA_PASSWORD"])
        if spec.password_env in settings.BY_NAME and settings.declared(spec.password_env).default:
            published.add(str(settings.declared(spec.password_env).default))
        problem = weak_secret(account.password, frozenset(published))
        if problem:
            raise ConfigError(f"KCO_ENV=production refuses {spec.password_env} ({where}.password_env): "
                              f"{problem}. Set it to the account's Klarna API password (a strong "
                              "value: `flask --app wsgi kco secret` prints what one looks like).")
        key = folded(account.password)
        if key in own:
            name = own[key]
            raise ConfigError(f"KCO_ENV=production refuses {spec.password_env} ({where}."
                              f"password_env): it is the same value as {name}, so whoever "
                              f"holds one holds both. Give {name} a random value of its own "
                              "(`flask --app wsgi kco secret` prints one); "
                              f"{spec.password_env} is the account's Klarna API password.")
        other = klarna.setdefault(key, spec.password_env)
        if other != spec.password_env:  # two accounts may well name one variable
            raise ConfigError(f"KCO_ENV=production refuses {spec.password_env} ({where}."
                              f"password_env): it is the same value as {other}, another Klarna "
                              f"account's API password. Set it to this account's own password "
                              "(Klarna's Merchant Portal issues one per account).")
