"""Which endpoint URLs the service may call: a webhook URL is chosen by whoever holds the API
key, and the worker then makes requests from inside the merchant's network to it (server-side
request forgery). In production only https:// and only public addresses: the host is resolved
and EVERY address it has must be global, since a client may connect to any of them. The worker
checks again before each delivery (a name may resolve elsewhere since it was registered: DNS
rebinding). Outside production (`KCO_WEBHOOK_PRIVATE_URLS`) http:// and local receivers pass.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL = 2000


def url_problem(url: str, private_allowed: bool, resolve=socket.getaddrinfo) -> str | None:
    """Why `url` may not be an endpoint, or None."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        return f"Must be a URL of at most {MAX_URL} characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"Not a valid URL: {exc}."
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "Must be an absolute https:// URL."
    if parts.username or parts.password:
        return "Must not carry credentials (put them in the receiver's check of the signature)."
    if private_allowed:
        return None
    if parts.scheme != "https":
        return "Must be https:// in production."
    try:
        infos = resolve(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        return f"The host {parts.hostname!r} does not resolve ({exc})."
    addresses = {info[4][0] for info in infos}
    for address in sorted(addresses):
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local
                    else "private" if ip.is_private else "reserved")
            return f"The host resolves to a {kind} address ({ip}); only public addresses are allowed."
    if not addresses:
        return f"The host {parts.hostname!r} has no address."
    return None
