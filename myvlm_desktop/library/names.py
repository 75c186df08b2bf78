"""Concept names compared as people read them: Unicode case folding, not SQLite's ASCII-only NOCASE.

`name_key("RËX 🐶") == name_key("Rëx 🐶")`, a name typed with a combining accent matches one stored
precomposed, and runs of spaces count as one (names read from other apps' metadata). Every library connection registers it as the SQL function `name_key(text)`, so search and
naming compare names the same way.
"""

from __future__ import annotations

import unicodedata


def name_key(name: str | None) -> str | None:
    """Spaces collapsed, then NFKC, case-folded, NFKC again: Unicode's caseless match for identifiers."""
    if name is None:
        return None
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", " ".join(name.split())).casefold())
