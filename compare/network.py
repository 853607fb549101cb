"""The one network guard: a process-wide audit hook that refuses internet sockets.

Below every stage. Runs never need the network (the data is local; only `compare data
--download` downloads). `forbid_network()` blocks for the rest of the process (the
study, the bench, every worker); `no_network()` blocks inside a block only (parity's
check that the frameworks' own dataset loaders read local files). Both go through one
audit hook, installed once: an audit hook cannot be removed, so nothing imported later
can turn a permanent block off. Unix sockets stay allowed.
"""

from __future__ import annotations

import contextlib
import socket
import sys

FAMILIES = (socket.AF_INET, socket.AF_INET6)
LOOKUPS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr")
SENDS = ("socket.connect", "socket.sendto", "socket.sendmsg")
FIX = "the data must be local: run `python -m compare data --download` first"

_state = {"installed": False, "forever": False, "blocks": 0}


class NetworkBlocked(RuntimeError):
    """Something tried to reach the network where that is refused."""


def _hook(event: str, args) -> None:
    if not (_state["forever"] or _state["blocks"]):
        return
    blocked = event in LOOKUPS or (event in SENDS and getattr(args[0], "family", None) in FAMILIES)
    if blocked:
        target = args[0] if event in LOOKUPS else args[1]
        raise NetworkBlocked(f"network access is blocked here ({event} {target!r}); {FIX}")


def _install() -> None:
    if not _state["installed"]:
        sys.addaudithook(_hook)
        _state["installed"] = True


def forbid_network() -> None:
    """Refuse every internet connection and name lookup from now on, in this process."""
    _install()
    _state["forever"] = True


def network_forbidden() -> bool:
    return _state["forever"]


@contextlib.contextmanager
def no_network():
    """Refuse internet connections and name lookups inside the block."""
    _install()
    _state["blocks"] += 1
    try:
        yield
    finally:
        _state["blocks"] -= 1
