"""Where policy files are: a path as given, or a name looked up in the policy directories.

Kept apart from policy.py (TOML parsing and validation) so the boot path can name a policy
file, and key its compiled-program cache on that file, without importing the parser.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

from runnc_py.errors import RunncError

__all__ = ["find_policy", "policy_dirs"]


def policy_dirs() -> list[Path]:
    """Where named policies are looked up, first match wins.

    The source tree's `policies/` serves the editable install and the repo itself; an installed
    wheel ships the same files under `<prefix>/share/runnc-py/policies` (pyproject data-files),
    the prefix being the environment's or, for `pip install --user`, the user base.
    """
    share = Path("share") / "runnc-py" / "policies"
    dirs = [Path(sys.prefix) / share, Path(site.getuserbase()) / share]
    root = Path(__file__).resolve().parents[2]
    # Only a real checkout: in site-packages, parents[2]/policies could be another project's.
    if (root / "pyproject.toml").is_file():
        dirs.insert(0, root / "policies")
    return dirs


def find_policy(name_or_path: str) -> Path:
    """A path (contains `/` or ends in `.toml`) is taken as is; a bare name is searched for."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise RunncError("no such policy file", where=name_or_path)
        return path
    if not name_or_path or not name_or_path.replace("-", "").replace("_", "").isalnum():
        raise RunncError(f"invalid policy name {name_or_path!r}")
    dirs = policy_dirs()
    for directory in dirs:
        candidate = directory / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(d) for d in dirs)
    raise RunncError(f"policy {name_or_path!r} not found (looked in {looked})")
