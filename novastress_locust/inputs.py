"""Checks of what a user hands in before any load starts: config files, key files.

    check_config_files(sys.argv, os.environ)     # InputError: locust.conf line 3: ...
    check_private_key("~/.ssh/id_ed25519", "--target-private-key-path")

Locust's config-file parser takes a garbled line of `locust.conf` for an option or a user
class name and fails far from the cause (or not at all); a key file that is missing or
readable by others fails only when the log watcher first connects, after the load began.
Each problem here is one line naming the file, the line or option, and the fix.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Mapping, Sequence

from .errors import UserError

# what configargparse accepts, written the way Locust's documentation writes it
_LINE = re.compile(r"^(?P<key>[A-Za-z][\w-]*)\s*(?:[=:]\s*(?P<value>.*))?$")
DEFAULT_CONFIG_FILES = ("~/.locust.conf", "locust.conf")


class InputError(UserError):
    """A file or option the user must fix; str() is one clear line."""


def config_files(argv: Sequence[str], environ: Mapping[str, str]) -> list[Path]:
    """The ini-style config files Locust will read: its defaults and --config (or LOCUST_CONFIG)."""
    files = [Path(name).expanduser() for name in DEFAULT_CONFIG_FILES]
    explicit = environ.get("LOCUST_CONFIG")
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            explicit = argv[index + 1]
        elif arg.startswith("--config="):
            explicit = arg.split("=", 1)[1]
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InputError(f"--config {explicit}: no such file; fix the path")
        files.append(path)
    return [path for path in files if path.is_file() and path.suffix != ".toml"]


def check_config_file(path: Path) -> None:
    """Every line of an ini-style Locust config is blank, a comment, [section] or `option = value`."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or re.fullmatch(r"\[[\w.\- ]+\]", stripped):
            continue
        if not _LINE.match(stripped):
            shown = stripped if len(stripped) <= 60 else stripped[:57] + "..."
            raise InputError(f"{path} line {number}: {shown!r} is not 'option = value' (e.g. "
                             f"'run-time = 30s'); fix or remove the line")


def check_config_files(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    for path in config_files(argv, environ):
        check_config_file(path)


def check_private_key(path: str | None, option: str) -> None:
    """The key exists, is a readable file, and only its owner can read it (as ssh insists)."""
    if not path:
        return
    key = Path(path).expanduser()
    if not key.exists():
        raise InputError(f"{option} {path} does not exist; fix the path")
    if not key.is_file():
        raise InputError(f"{option} {path} is not a file; give the private key file")
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o077:
        raise InputError(f"{option} {path} is accessible by others (mode {mode:04o}); ssh refuses "
                         f"such keys: run chmod 600 {path}")
    if not os.access(key, os.R_OK):
        raise InputError(f"{option} {path} is not readable by this user; fix its owner or mode")
