"""Names AWS checks before anything runs: S3 bucket names and Lambda handler strings. Pure.

Each check returns the broken rules as messages (empty when the name is fine), so the caller
names the place in the file.
"""

from __future__ import annotations

import re

# S3's general purpose bucket naming rules, in the order the S3 user guide lists them.
_BUCKET_CHARS = re.compile(r"^[a-z0-9.-]*$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problems(name: str) -> list[str]:
    """Every general purpose bucket naming rule `name` breaks."""
    broken = []
    if not 3 <= len(name) <= 63:
        broken.append("Bucket names must be between 3 (min) and 63 (max) characters long.")
    if not _BUCKET_CHARS.match(name):
        broken.append(
            "Bucket names can consist only of lowercase letters, numbers, periods "
            "(.), and hyphens (-)."
        )
    if name and not (_alnum(name[0]) and _alnum(name[-1])):
        broken.append("Bucket names must begin and end with a letter or number.")
    if ".." in name:
        broken.append("Bucket names must not contain two adjacent periods.")
    if _IP_ADDRESS.match(name):
        broken.append(
            "Bucket names must not be formatted as an IP address (for example, 192.168.5.4)."
        )
    broken += [
        f"Bucket names must not start with the prefix '{p}'."
        for p in _RESERVED_PREFIXES
        if name.startswith(p)
    ]
    broken += [
        f"Bucket names must not end with the suffix '{s}'."
        for s in _RESERVED_SUFFIXES
        if name.endswith(s)
    ]
    return [f"invalid bucket name {name!r}: {rule}" for rule in broken]


def _alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def handler_problem(handler: str) -> str | None:
    """What the Python runtime (awslambdaric `_get_handler`) would refuse in `handler`: it
    splits at the last '.' into a module path ('/'-separated) and a function name. A module
    path must also stay inside the function's code folder: no absolute path, no '.' or '..'."""
    if "." not in handler:  # the runtime's own text: rsplit(".", 1) unpacked into two names
        return f"Bad handler '{handler}': not enough values to unpack (expected 2, got 1)"
    module, function = handler.rsplit(".", 1)
    segments = re.split(r"[/\\]", module)
    if module[:1] in ("/", "\\") or ".." in module or "." in segments:
        return (
            f"Bad handler '{handler}': the module path must stay inside the function's code folder"
        )
    if any(not part for segment in segments for part in segment.split(".")):
        return f"Bad handler '{handler}': the module path has an empty part"
    if not function.isidentifier():
        return f"Bad handler '{handler}': the function name {function!r} is not a Python identifier"
    return None
