"""Mail addresses as they are compared: lower case, no display name."""

import functools
from email.utils import getaddresses


def normalize(address):
    """``"Ann <Ann@Example.com>"`` -> ``"ann@example.com"`` (the first address); ``""`` when none."""
    return next(_addresses([address]), "")


def addresses_in(header_values):
    """The set of normalized addresses in header values such as To or Cc."""
    found = set()
    for value in header_values:
        if value:
            found |= _addresses_of(str(value))
    return found


@functools.lru_cache(maxsize=4096)
def _addresses_of(value):
    # The same values come back mail after mail (the recruiter's own address, a newsletter's
    # sender): each is read once.
    return frozenset(_addresses([value]))


def _addresses(header_values):
    for _name, raw in getaddresses([str(value) for value in header_values if value]):
        address = raw.strip().strip("<>").lower()
        local, _at, domain = address.rpartition("@")
        if local and domain and not any(char.isspace() for char in address):
            yield address
