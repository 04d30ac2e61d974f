"""Where things are, said once for every command: flag > environment > a profile in ``framefarm.toml``
> defaults.

A profile is a table in ``framefarm.toml`` (the current directory's, then the user's:
``$XDG_CONFIG_HOME/framefarm/framefarm.toml``, else ``~/.config/framefarm/framefarm.toml``)::

    [profile.prod]
    backend = "lambda"
    stack = "Framefarm"
    region = "eu-west-1"

``--profile NAME`` (or ``$FRAMEFARM_PROFILE``) chooses one; without, the ``default`` profile if there is one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from framefarm.config import ENV_BUCKET, ENV_HOME, ENV_MAX_CONCURRENCY, ENV_TABLE
from framefarm.errors import JobSpecError

SETTINGS_FILENAME = "framefarm.toml"
ENV_PROFILE = "FRAMEFARM_PROFILE"
DEFAULT_PROFILE = "default"
BACKENDS = ("local", "lambda", "cloudrun")
# Each setting: its flag and its environment variable. A profile names it as the key here. No command
# takes --region (boto3's AWS_REGION works too) or --max-concurrency; render alone takes --backend.
FLAGS = {"home": "--home", "table": "--table", "bucket": "--bucket", "stack": "--stack",
         "gcs_bucket": "--gcs-bucket", "region": "--region", "backend": "--backend",
         "max_concurrency": "--max-concurrency"}
ENVIRONMENT = {"home": ENV_HOME, "table": ENV_TABLE, "bucket": ENV_BUCKET, "stack": "FRAMEFARM_STACK",
               "gcs_bucket": "FRAMEFARM_GCS_BUCKET", "region": "FRAMEFARM_REGION", "backend": "FRAMEFARM_BACKEND",
               "max_concurrency": ENV_MAX_CONCURRENCY}
NUMBERS = frozenset({"max_concurrency"})  # settings a profile may give as a TOML number
# Flags every command takes, before or after its name: repeated in the hints a command prints.
GLOBAL_FLAGS = ("home", "profile", "table", "bucket", "stack", "gcs_bucket")


@dataclass(frozen=True)
class Settings:
    """The settings a command resolved, and the flags that gave some of them (for the hints it prints)."""

    values: Mapping[str, str] = field(default_factory=dict)
    given: tuple[str, ...] = ()  # ("--table", "T", ...): what the user typed, to repeat in a runnable hint

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def hint_flags(self) -> str:
        """The flags a follow-up command needs: those typed on this one (the environment and the profile
        file give the rest to the next command too)."""
        return "".join(f" {shlex.quote(word)}" for word in self.given)


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Each setting from its flag, else its environment variable, else the chosen profile."""
    environ = os.environ if environ is None else environ
    profile_flag = getattr(args, "profile", None)
    profile = load_profile(profile_flag or environ.get(ENV_PROFILE) or None, environ, cwd or Path.cwd())
    values: dict[str, str] = {}
    given: list[str] = ["--profile", profile_flag] if profile_flag else []
    for name, flag in FLAGS.items():
        if (value := getattr(args, name, None)) is not None and name in GLOBAL_FLAGS:
            given += [flag, str(value)]
        value = value if value is not None else (environ.get(ENVIRONMENT[name]) or profile.get(name))
        if value is not None:
            values[name] = str(value)
    if values.get("backend", "local") not in BACKENDS:
        raise JobSpecError(f"backend {values['backend']!r}: expected one of {', '.join(BACKENDS)}")
    return Settings(values, tuple(given))


def settings_files(environ: Mapping[str, str], cwd: Path) -> list[Path]:
    """``framefarm.toml`` in the current directory, then in the user's config directory."""
    config_home = Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [cwd / SETTINGS_FILENAME, config_home / "framefarm" / SETTINGS_FILENAME]


def load_profile(name: str | None, environ: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """The named profile from the first settings file that has it; {} for no ``default`` profile.
    A malformed file, an unknown key or a named profile found nowhere is a one-line error."""
    files = [path for path in settings_files(environ, cwd) if path.is_file()]
    for path in files:
        profiles = read_profiles(path)
        if (name or DEFAULT_PROFILE) in profiles:
            return profiles[name or DEFAULT_PROFILE]
    if name is not None:
        where = ", ".join(str(path) for path in files) or f"no {SETTINGS_FILENAME} found"
        raise JobSpecError(f"profile {name!r} not found ({where}); add a [profile.{name}] table")
    return {}


def read_profiles(path: Path) -> dict[str, dict[str, str]]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line L, column C)"
        raise JobSpecError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobSpecError(f"{path}: cannot read it: {exc}") from None
    profiles = document.get("profile", {})
    if not isinstance(profiles, dict) or not all(isinstance(table, dict) for table in profiles.values()):
        raise JobSpecError(f"{path}: expected [profile.NAME] tables")
    for name, table in profiles.items():
        for key, value in table.items():
            if key not in FLAGS:
                raise JobSpecError(f"{path}: [profile.{name}] has unknown key {key!r}; "
                                   f"known: {', '.join(sorted(FLAGS))}")
            if not isinstance(value, str) and not (key in NUMBERS and isinstance(value, int)):
                raise JobSpecError(f"{path}: [profile.{name}] {key} must be a string")
    return profiles
