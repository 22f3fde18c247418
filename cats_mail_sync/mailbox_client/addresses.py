"""Mail addresses as they are compared: lower case, no display name.

Python's address parser (``email.utils.getaddresses``) reads every header value. A plain
one, such as ``ann@example.com`` or ``Ann Smith <Ann@Example.com>, bob@example.org``, is read
by a pattern instead: same addresses, a fraction of the time (tests/test_addresses.py holds
both side by side on hostile and generated values).
"""

import functools
import re
from email.utils import getaddresses

# What the pattern reads: entries separated by commas, each an address alone or a display name
# of plain words followed by the address in angle brackets; no quotes, comments, groups,
# backslashes, brackets, 8-bit or encoded words (their "=?" never passes as a name).
_WHITE = r"[ \t\r\n]*"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_NAME = r"[A-Za-z0-9][A-Za-z0-9'._-]*(?:[ \t\r\n]+[A-Za-z0-9][A-Za-z0-9'._-]*)*"
PLAIN_ENTRY = re.compile(rf"{_WHITE}(?:({_ADDRESS})|(?:{_NAME}{_WHITE})?<({_ADDRESS})>){_WHITE}")
# No address: one object for all the mail without (a Bcc, say), rather than one each.
NONE = frozenset()


def normalize(address):
    """``"Ann <Ann@Example.com>"`` -> ``"ann@example.com"`` (the first address); ``""`` when none."""
    return next(_addresses([address]), "")


def addresses_in(header_values):
    """The normalized addresses in header values such as To or Cc, as a frozenset."""
    found = [_addresses_of(str(value)) for value in header_values if value]
    if len(found) == 1:
        return found[0]
    return frozenset().union(*found) if found else NONE


def _addresses_of(value):
    """One header value's addresses: by the pattern when it is plain, else by Python's parser."""
    found = plain_addresses(value)
    return found if found is not None else _parsed(value)


@functools.lru_cache(maxsize=4096)
def _parsed(value):
    # Values the parser reads come back mail after mail (a newsletter's sender): each is read
    # once. Plain values are not kept: reading one again costs less than keeping it.
    return frozenset(_addresses([value]))


def plain_addresses(value):
    """The normalized addresses of a plain header value (see PLAIN_ENTRY), as a frozenset; None
    when the value is not plain (Python's parser reads it)."""
    found = []
    for entry in value.split(","):
        matched = PLAIN_ENTRY.fullmatch(entry)
        if matched is None:
            return None
        found.append((matched[1] or matched[2]).lower())
    return frozenset(found)


def _addresses(header_values):
    for _name, raw in getaddresses([str(value) for value in header_values if value]):
        address = raw.strip().strip("<>").lower()
        local, _at, domain = address.rpartition("@")
        if local and domain and not any(char.isspace() for char in address):
            yield address


# A domain as a recruiter types one in a list ("family.org", "clinic.co.uk"): labels of letters,
# digits and hyphens (after IDNA for a unicode one), at least two of them.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def list_entries(text):
    """The entries of a list of addresses and domains (one per line or comma-separated), as they
    are compared: lower case, without a leading "@"."""
    names = {name.strip().lower().removeprefix("@") for name in (text or "").replace(",", "\n").splitlines()}
    names.discard("")
    return names


def is_domain(name):
    """Whether ``name`` is a domain name (a unicode one by its IDNA form): at most 253 characters."""
    try:
        ascii_name = name.lower().encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_name.split(".")
    return len(ascii_name) <= 253 and len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def not_listable(text):
    """The entries of ``list_entries(text)`` that are neither one address nor a domain, sorted."""
    wrong = []
    for name in list_entries(text):
        local, at, domain = name.rpartition("@")
        if at and local and "@" not in local and normalize(name) == name and is_domain(domain):
            continue
        if not at and is_domain(name):
            continue
        wrong.append(name)
    return sorted(wrong)
