"""Where policy files are: a path as given, or a name looked up in the policy directories.

Kept apart from policy.py (TOML parsing and validation) so the boot path can name a policy
file, and key its compiled-program cache on that file, without importing the parser.
"""

from __future__ import annotations

import os
import sys

from runnc_py.errors import RunncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["find_policy", "policy_dirs"]

_SHARE = os.path.join("share", "runnc-py", "policies")


def policy_dirs() -> list[str]:
    """Where named policies are looked up, first match wins.

    The source tree's `policies/` serves the editable install and the repo itself; an installed
    wheel ships the same files under `<prefix>/share/runnc-py/policies` (pyproject data-files),
    the prefix being the environment's or, for `pip install --user`, the user base.
    """
    return list(_dirs())


def _dirs() -> Iterator[str]:
    """policy_dirs() one at a time: the user base, last, is only worked out when reached
    (it needs the `site` module, which the boot path does not otherwise import)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    # Only a real checkout: in site-packages, the grandparent's policies/ could be another's.
    if os.path.isfile(os.path.join(root, "pyproject.toml")):
        yield os.path.join(root, "policies")
    yield os.path.join(sys.prefix, _SHARE)
    import site

    yield os.path.join(site.getuserbase(), _SHARE)


def find_policy(name_or_path: str) -> str:
    """A path (contains `/` or ends in `.toml`) is taken as is; a bare name is searched for."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        if not os.path.isfile(name_or_path):
            raise RunncError("no such policy file", where=name_or_path)
        return name_or_path
    if not name_or_path or not name_or_path.replace("-", "").replace("_", "").isalnum():
        raise RunncError(f"invalid policy name {name_or_path!r}")
    for directory in _dirs():
        candidate = os.path.join(directory, f"{name_or_path}.toml")
        if os.path.isfile(candidate):
            return candidate
    looked = ", ".join(policy_dirs())
    raise RunncError(f"policy {name_or_path!r} not found (looked in {looked})")
