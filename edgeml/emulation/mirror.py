"""The Debian mirror this machine's apt already uses, read from its sources at run time.

The host name is never written into the project: whatever mirror (or proxy) the machine is set up
with is the one that works from here.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Iterator, List, Tuple
from urllib.parse import urlparse

from edgeml.emulation.errors import EmulationError

__all__ = ["apt_source_entries", "debian_mirror"]

STEP = "find the Debian mirror in apt's sources"


def debian_mirror(apt_dir: str = "/etc/apt") -> str:
    """The URI of the Debian archive (not the security archive) in apt's sources.

    `EDGEML_DEBIAN_MIRROR` overrides it, for machines whose apt points elsewhere.
    """
    override = os.environ.get("EDGEML_DEBIAN_MIRROR")
    if override:
        return override.rstrip("/")
    for uri, suites in apt_source_entries(apt_dir):
        if _is_debian_archive(uri, suites):
            return uri.rstrip("/")
    raise EmulationError(
        STEP,
        "no Debian archive (a URI ending in /debian) among the 'deb' entries of /etc/apt/sources.list"
        " and /etc/apt/sources.list.d; add one, or set EDGEML_DEBIAN_MIRROR to a Debian mirror URL",
    )


def apt_source_entries(apt_dir: str = "/etc/apt") -> Iterator[Tuple[str, List[str]]]:
    """(uri, suites) of every enabled binary ('deb') source, one-line and deb822 formats."""
    one_line = [os.path.join(apt_dir, "sources.list"), *sorted(glob.glob(f"{apt_dir}/sources.list.d/*.list"))]
    for path in one_line:
        yield from _one_line_entries(_read(path))
    for path in sorted(glob.glob(f"{apt_dir}/sources.list.d/*.sources")):
        yield from _deb822_entries(_read(path))


def _is_debian_archive(uri: str, suites: List[str]) -> bool:
    parsed = urlparse(uri)
    is_archive_path = parsed.path.rstrip("/").endswith("/debian")
    return parsed.scheme in ("http", "https") and is_archive_path and bool(suites)


def _one_line_entries(text: str) -> Iterator[Tuple[str, List[str]]]:
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0])  # drop comments and [options]
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "deb":
            yield fields[1], [fields[2]]


def _deb822_entries(text: str) -> Iterator[Tuple[str, List[str]]]:
    for paragraph in re.split(r"\n\s*\n", text):
        fields = {}
        for line in paragraph.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0].lower() == "no":
            continue
        for uri in fields.get("uris", []):
            yield uri, fields.get("suites", [])


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""
