"""Open an edgeml HTML report in a real headless Chromium, as a user's browser would show it.

    page = render(report_path, tmp_path)     # Chromium's --dump-dom and --screenshot of the page
    page.tables[0]                           # rows of cells (text), header row first
    page.count("svg"), page.screenshot       # elements in the rendered DOM, the PNG file
    network_references(report_path)          # src/href/url(...) pointing outside the page: must be []

Debian's `chromium` package (/usr/bin/chromium; `make system-deps` installs it). Without it the test is
skipped, and fails under CI (tests.support.marks.unavailable). Standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional

__all__ = ["RenderedPage", "chromium", "network_references", "render"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars"]


def chromium() -> Optional[str]:
    """The Chromium executable, or None (EDGEML_CHROMIUM names another)."""
    named = os.environ.get("EDGEML_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@dataclass
class RenderedPage:
    dom: str
    screenshot: Path
    tables: List[List[List[str]]] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)
    text: str = ""

    def count(self, tag: str) -> int:
        return self.counts.get(tag, 0)

    @property
    def screenshot_size(self) -> tuple:
        """(width, height) of the PNG screenshot, from its header."""
        header = self.screenshot.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
        return struct.unpack(">II", header[16:24])


def render(page: Path, workdir: Path, *, width: int = 1100, height: int = 1600, timeout: float = 120) -> RenderedPage:
    """Load `page` in headless Chromium; its rendered DOM (after layout) and a screenshot."""
    from tests.support.marks import unavailable

    executable = chromium()
    if executable is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium; or run make system-deps)")
    workdir = Path(workdir)
    profile = workdir / f"chromium-profile-{os.getpid()}"
    profile.mkdir(parents=True, exist_ok=True)
    url = Path(page).resolve().as_uri()
    base = [executable, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
    environment = {**os.environ, "HOME": str(workdir)}  # Chromium writes its caches under HOME
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=timeout,
                         env=environment, stdin=subprocess.DEVNULL)
    assert dom.returncode == 0 and "<html" in dom.stdout, f"chromium --dump-dom failed:\n{dom.stderr[-3000:]}"
    screenshot = workdir / (Path(page).stem + ".png")
    shot = subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, text=True,
                          timeout=timeout, env=environment, stdin=subprocess.DEVNULL)
    assert shot.returncode == 0 and screenshot.is_file(), f"chromium --screenshot failed:\n{shot.stderr[-3000:]}"
    parsed = _DomReader()
    parsed.feed(dom.stdout)
    return RenderedPage(dom=dom.stdout, screenshot=screenshot, tables=parsed.tables, counts=parsed.counts,
                        text=" ".join(parsed.words))


# Anything a page could fetch: src/href/srcset/xlink:href/action attributes, CSS url(...) and @import.
_REFERENCE = re.compile(r"""(?:\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?(?!data:|#)[^"'\s>]+)"""
                        r"""|url\(\s*["']?(?!data:)[^)"']+|@import""", re.IGNORECASE)


def network_references(page: Path) -> List[str]:
    """What in the page's HTML could make a browser fetch something (inline data: URIs are fine), and any
    http(s):// address at all."""
    text = Path(page).read_text(encoding="utf-8")
    return _REFERENCE.findall(text) + re.findall(r"https?://[^\s\"'<>]+", text)


class _DomReader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: List[List[List[str]]] = []
        self.counts: Dict[str, int] = {}
        self.words: List[str] = []
        self._row: Optional[List[str]] = None
        self._cell: Optional[List[str]] = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag in ("style", "script", "title"):
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if not self._skip and data.strip():
            self.words.append(data.strip())
