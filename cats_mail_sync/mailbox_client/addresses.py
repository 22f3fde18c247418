"""Mail addresses as they are compared: lower case, no display name."""

from email.utils import getaddresses


def normalize(address):
    """``"Ann <Ann@Example.com>"`` -> ``"ann@example.com"``; ``""`` when it is no address."""
    found = addresses_in([address])
    return next(iter(found), "")


def addresses_in(header_values):
    """The set of normalized addresses in header values such as To or Cc."""
    found = set()
    for _name, raw in getaddresses([str(value) for value in header_values if value]):
        address = raw.strip().strip("<>").lower()
        if "@" in address and not any(char.isspace() for char in address):
            found.add(address)
    return found
