"""Questions about the whole library ("When did I last see <Rex>?"), answered from the database.

The facts come from SQL (who is in how many photos, first and last dates, places, photos of several concepts
together, caption snippets); a small LM (SmolLM2, vlm/phrase.py) only turns the facts into a sentence. Every
date and number in that sentence is checked against the facts, and names too: when the phrasing drops or
changes one, the answer is the facts themselves (the template). The facts are returned and stored with it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass, field

from .. import config
from ..library.db import now
from ..library.names import name_key
from ..library.store import Library
from ..models.errors import ModelUnavailable
from ..vlm import phrase

log = logging.getLogger(__name__)

TEMPLATE = "template"
MAX_LISTED = 10  # photos named in one answer; the count says how many there are in all
MAX_PHRASED = 240  # longer facts do not fit the LM's short answer: they are shown as they are

_INTENTS = [
    ("count", r"\bhow (?:many|often)\b|\bnumber of\b|\bcount\b"),
    ("first", r"\bfirst\b|\bearliest\b|\boldest\b"),
    ("last", r"\blast\b|\blatest\b|\bmost recent(?:ly)?\b|\brecently\b|\bnewest\b"),
    ("where", r"\bwhere\b|\bplaces?\b|\blocations?\b"),
    ("together", r"\btogether\b|\bboth\b"),
    ("photos", r"\bwhich (?:photos|pictures|images)\b|\bshow me\b|\blist\b"),
    ("who", r"\bwho\b|\bwhom\b"),
    ("what", r"\bwhat\b.*\b(?:do|does|doing|did|wear|wearing|hold|holding|like)\b"),
    ("when", r"\bwhen\b"),
]
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTH = re.compile(r"\b(" + "|".join(_MONTHS) + r")\b(?:\s+(\d{4}))?", re.IGNORECASE)
_NAME_CUE = re.compile(r"\b(?:of|see|saw|seen|with|and|show|shows|showing|photographed|photos?)\s+"
                       r"([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)")
_NOT_NAMES = {"i", "me", "my", "we", "us", "our", "you", "the", "a", "an", "all", "any", "photos", "photo",
              "pictures", "everyone", "everybody", "someone", "anyone", "them", "him", "her", "it", "this",
              "that", *_MONTHS, *(d.lower() for d in calendar.day_name)}


# -- the question ----------------------------------------------------------------------------------------
@dataclass
class Question:
    text: str
    concepts: list[dict] = field(default_factory=list)  # {"id", "name", "identifier", "kind"}
    unknown: list[str] = field(default_factory=list)  # names asked about that no concept has
    intents: list[str] = field(default_factory=list)
    years: tuple[int, int] | None = None  # inclusive
    month: int | None = None

    @property
    def period(self) -> str:
        """' in June 2024', ' from 2022 to 2024', '' for all time: appended to fact sentences."""
        month = calendar.month_name[self.month] if self.month else ""
        if self.years is None:
            return f" in {month}" if month else ""
        first, last = self.years
        if first != last:
            return f" from {first} to {last}"
        return f" in {month} {first}" if month else f" in {first}"


def parse_question(conn: sqlite3.Connection, text: str) -> Question:
    q = Question(text.strip())
    rest = _find_concepts(conn, q)
    rest = _find_period(q, rest)
    q.intents = [name for name, pattern in _INTENTS if re.search(pattern, rest, re.IGNORECASE)]
    if len(q.concepts) >= 2 and "photos" in q.intents and "together" not in q.intents:
        q.intents.append("together")  # "which photos show <Alice> and <Rex>" means both at once
    return q


def _find_concepts(conn: sqlite3.Connection, q: Question) -> str:
    """Fill q.concepts / q.unknown; returns the text with the names blanked (so 'May' is no month)."""
    rows = [dict(r) for r in conn.execute("SELECT id, name, identifier, kind FROM concepts")]
    rest = q.text
    for match in re.finditer(r"<([^<>]{1,60})>|@\"([^\"]{1,60})\"|@([\w'-]+)", q.text):
        said = next(g for g in match.groups() if g).strip()
        key = name_key(said)
        row = next((r for r in rows if key in (name_key(r["name"]), name_key(r["identifier"].strip("<>")))), None)
        _note(q, row, f"<{said}>")
        rest = rest.replace(match.group(), " ")
    for row in sorted(rows, key=lambda r: -len(r["name"])):
        pattern = r"(?<![\w<@])" + re.escape(row["name"]) + r"(?![\w>])"
        if re.search(pattern, rest, re.IGNORECASE):
            _note(q, row, row["name"])
            rest = re.sub(pattern, " ", rest, flags=re.IGNORECASE)
    if not q.unknown:  # "How many photos of Bob?" with no Bob: say so rather than answer about everyone
        for match in _NAME_CUE.finditer(rest):
            words = [re.sub(r"'s$", "", w) for w in match.group(1).split()]
            if words[0].lower() in _NOT_NAMES:
                continue
            if len(words) > 1 and words[1].lower() in _NOT_NAMES:
                words = words[:1]
            q.unknown.append(f"<{' '.join(words)}>")
            break
    return rest


def _note(q: Question, row: dict | None, said: str) -> None:
    if row is None:
        if said not in q.unknown:
            q.unknown.append(said)
    elif all(c["id"] != row["id"] for c in q.concepts):
        q.concepts.append(row)


def _find_period(q: Question, rest: str) -> str:
    today = dt.date.today()
    rest = re.sub(r"\bthis year\b", str(today.year), rest, flags=re.IGNORECASE)
    rest = re.sub(r"\blast year\b", str(today.year - 1), rest, flags=re.IGNORECASE)
    iso = re.search(r"\b(\d{4})-(\d{1,2})\b", rest)
    if iso and 1 <= int(iso.group(2)) <= 12:
        q.month = int(iso.group(2))
        rest = rest.replace(iso.group(), f" {iso.group(1)} ")
    for match in _MONTH.finditer(rest):
        word = match.group(1)
        if word.lower() == "may" and not (word[0].isupper() and (match.group(2) or match.start() > 0)):
            continue  # "may" is usually the verb
        q.month = _MONTHS[word.lower()]
        rest = rest.replace(word, " ")
        break
    years = sorted({int(y) for y in re.findall(r"(?<![\w-])((?:18|19|20|21)\d\d)(?![\w-])", rest)})
    if years:
        q.years = (years[0], years[-1])
    return rest


# -- facts --------------------------------------------------------------------------------------------------
@dataclass
class Fact:
    """One sentence of truth from the database. role: 'answer' (phrased by the LM and checked),
    'list' (photo names appended verbatim), 'context' (shown with the facts only)."""

    kind: str
    text: str
    role: str = "answer"
    names: tuple[str, ...] = ()  # concept names the phrasing must keep
    data: dict = field(default_factory=dict)

    @property
    def figures(self) -> set[str]:
        """The dates and numbers the phrasing must keep (those inside file names are not required)."""
        files = " ".join(p["file"] for p in self.data.get("photos", []))
        return phrase.figures(self.text) - phrase.figures(files)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "role": self.role, **self.data}


class _Photos:
    """SQL for 'ok' photos of all the given concepts within the question's period."""

    def __init__(self, conn: sqlite3.Connection, q: Question):
        self.conn, self.q = conn, q

    def where(self, concept_ids: list[int]) -> tuple[str, list]:
        sql, params = ["p.status = 'ok'"], []
        for cid in concept_ids:
            sql.append("p.id IN (SELECT photo_id FROM concept_photos WHERE concept_id = ?)")
            params.append(cid)
        if self.q.years:
            sql.append("substr(p.date, 1, 4) BETWEEN ? AND ?")
            params += [f"{self.q.years[0]:04d}", f"{self.q.years[1]:04d}"]
        if self.q.month:
            sql.append("substr(p.date, 6, 2) = ?")
            params.append(f"{self.q.month:02d}")
        return " AND ".join(sql), params

    def count(self, concept_ids: list[int]) -> int:
        where, params = self.where(concept_ids)
        return self.conn.execute(f"SELECT count(*) FROM photos p WHERE {where}", params).fetchone()[0]

    def listed(self, concept_ids: list[int], order: str = "ASC", limit: int = MAX_LISTED) -> list[dict]:
        where, params = self.where(concept_ids)
        rows = self.conn.execute(
            f"SELECT p.id, p.path, p.date, p.lat, p.lon FROM photos p WHERE {where} AND p.date IS NOT NULL "
            f"ORDER BY p.date {order}, p.id {order} LIMIT ?", [*params, limit]).fetchall()
        return [_photo(r) for r in rows]

    def places(self, concept_ids: list[int]) -> list[tuple[float, float, int]]:
        where, params = self.where(concept_ids)
        return self.conn.execute(
            f"SELECT round(p.lat, 3), round(p.lon, 3), count(*) AS n FROM photos p WHERE {where} "
            "AND p.lat IS NOT NULL AND p.lon IS NOT NULL GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 5",
            params).fetchall()


def _photo(row) -> dict:
    return {"id": row["id"], "path": row["path"], "file": os.path.basename(row["path"]),
            "date": (row["date"] or "")[:10]}


def _photos_word(n: int) -> str:
    return f"{n} photo" if n == 1 else f"{n} photos"


def _who(concepts: list[dict]) -> str:
    names = [c["identifier"] for c in concepts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def gather_facts(conn: sqlite3.Connection, q: Question) -> list[Fact]:
    """The facts that answer the question; unknown names get a fact saying so and nothing invented."""
    if q.unknown:
        return _unknown_facts(conn, q)
    photos = _Photos(conn, q)
    intents = list(q.intents) or ["summary"]
    if "when" in intents and not {"first", "last"} & set(intents):
        intents += ["first", "last"]
    facts: list[Fact] = []
    for intent in intents:
        builder = _BUILDERS.get(intent)
        if builder is not None:
            facts += [f for f in builder(conn, q, photos) if f.text not in {g.text for g in facts}]
    return facts or _summary(conn, q, photos)


def _unknown_facts(conn: sqlite3.Connection, q: Question) -> list[Fact]:
    known = [r[0] for r in conn.execute("SELECT identifier FROM concepts ORDER BY name COLLATE NOCASE LIMIT 20")]
    who = " or ".join(q.unknown)
    facts = [Fact("unknown", f"I don't know anyone called {who} in your library.", data={"unknown": q.unknown})]
    known_text = (f"The people, pets and things I know are: {', '.join(known)}." if known else
                  "I don't know anyone yet: name a cluster in People & Pets first.")
    facts.append(Fact("known", known_text, role="list", data={"known": known}))
    return facts


def _count(conn, q: Question, photos: _Photos) -> list[Fact]:
    if not q.concepts:
        n = photos.count([])
        return [Fact("count", f"Your library has {_photos_word(n)}{q.period}.", data={"count": n})]
    facts = []
    for c in q.concepts:
        n = photos.count([c["id"]])
        facts.append(Fact("count", f"{c['identifier']} is in {_photos_word(n)}{q.period}.", names=(c["name"],),
                          data={"concept": c["identifier"], "count": n}))
    if len(q.concepts) >= 2:
        facts += _together(conn, q, photos)[:1]
    return facts


def _first_or_last(which: str):
    def build(conn, q: Question, photos: _Photos) -> list[Fact]:
        order = "ASC" if which == "first" else "DESC"
        groups = [[c] for c in q.concepts] or [[]]
        facts = []
        for group in groups:
            found = photos.listed([c["id"] for c in group], order, 1)
            subject = _who(group) if group else "Your library's"
            if not found:
                facts.append(_none_found(q, group))
                continue
            p = found[0]
            text = (f"{subject} was {which} seen on {p['date']}, in {p['file']}." if group else
                    f"{subject} {which} photo is from {p['date']}: {p['file']}.")
            facts.append(Fact(which, text, names=tuple(c["name"] for c in group),
                              data={"concept": subject if group else None, "date": p["date"], "photos": [p]}))
        return facts
    return build


def _none_found(q: Question, group: list[dict]) -> Fact:
    about = f" of {_who(group)}" if group else ""
    return Fact("none", f"There are no photos{about}{q.period}.", names=tuple(c["name"] for c in group),
                data={"count": 0})


def _together(conn, q: Question, photos: _Photos) -> list[Fact]:
    if len(q.concepts) < 2:
        if "photos" in q.intents:
            return []  # one concept: the 'photos' builder lists them
        return [Fact("together", "Name two or more people, pets or things to find photos of them together, "
                     "like <Alice> and <Rex>.", role="answer")]
    ids = [c["id"] for c in q.concepts]
    n = photos.count(ids)
    names = tuple(c["name"] for c in q.concepts)
    head = Fact("together", f"{_who(q.concepts)} are together in {_photos_word(n)}{q.period}.", names=names,
                data={"concepts": [c["identifier"] for c in q.concepts], "count": n})
    return [head, *_listing(photos.listed(ids), n)] if n else [head]


def _listing(found: list[dict], total: int) -> list[Fact]:
    if not found:
        return []
    items = ", ".join(f"{p['file']} ({p['date']})" for p in found)
    more = f", and {total - len(found)} more" if total > len(found) else ""
    return [Fact("photos", f"Photos: {items}{more}.", role="list", data={"photos": found})]


def _photos_of(conn, q: Question, photos: _Photos) -> list[Fact]:
    if len(q.concepts) >= 2:
        return []  # the 'together' builder answers it
    ids = [c["id"] for c in q.concepts]
    n = photos.count(ids)
    if not n:
        return [_none_found(q, q.concepts)]
    about = f" of {_who(q.concepts)}" if q.concepts else ""
    head = Fact("count", f"There are {_photos_word(n)}{about}{q.period}.", names=tuple(c["name"] for c in q.concepts),
                data={"count": n})
    return [head, *_listing(photos.listed(ids, "DESC"), n)]


def _where(conn, q: Question, photos: _Photos) -> list[Fact]:
    return [_places(q, group, photos) for group in ([[c] for c in q.concepts] or [[]])]


def _places(q: Question, group: list[dict], photos: _Photos) -> Fact:
    ids, names = [c["id"] for c in group], tuple(c["name"] for c in group)
    n = photos.count(ids)
    if not n:
        return _none_found(q, group)
    places = photos.places(ids)
    subject = _who(group) if group else "Your photos"
    if not places:
        return Fact("places", f"None of the {_photos_word(n)}{' of ' + subject if group else ''}{q.period} "
                    "has a location.", names=names, data={"count": n, "places": []})
    spots = "; ".join(f"{lat:.3f}, {lon:.3f} ({_photos_word(k)})" for lat, lon, k in places)
    verb = "was photographed" if group else "were taken"
    return Fact("places", f"{subject} {verb} at {len(places)} place{'s' if len(places) > 1 else ''}{q.period}: "
                f"{spots}.", names=names,
                data={"places": [{"lat": lat, "lon": lon, "photos": k} for lat, lon, k in places]})


def _who_facts(conn, q: Question, photos: _Photos) -> list[Fact]:
    if not q.concepts:
        rows = conn.execute("SELECT id, name, identifier FROM concepts ORDER BY name COLLATE NOCASE").fetchall()
        if not rows:
            return [Fact("known", "I don't know anyone yet: name a cluster in People & Pets first.")]
        counts = sorted(((photos.count([r["id"]]), r["identifier"]) for r in rows), key=lambda t: (-t[0], t[1]))
        items = ", ".join(f"{ident} ({_photos_word(n)})" for n, ident in counts[:MAX_LISTED])
        return [Fact("known", f"I know {len(rows)}: {items}.", role="list",
                     data={"known": [{"concept": i, "count": n} for n, i in counts]})]
    return [_companions(conn, q, c, "answer") for c in q.concepts]


def _companions(conn, q: Question, concept: dict, role: str) -> Fact:
    where, params = _Photos(conn, q).where([concept["id"]])
    rows = conn.execute(
        "SELECT c.identifier, count(*) AS n FROM photos p JOIN concept_photos o ON o.photo_id = p.id "
        f"JOIN concepts c ON c.id = o.concept_id WHERE {where} AND o.concept_id != ? "
        "GROUP BY c.id ORDER BY n DESC, c.name LIMIT 3", [*params, concept["id"]]).fetchall()
    if not rows:
        return Fact("with", f"{concept['identifier']} is with no one I know in any photo{q.period}.",
                    role=role, names=(concept["name"],), data={"with": []})
    items = ", ".join(f"{r['identifier']} ({_photos_word(r['n'])})" for r in rows)
    return Fact("with", f"{concept['identifier']} is most often with {items}{q.period}.", role=role,
                names=(concept["name"],), data={"with": [{"concept": r[0], "count": r[1]} for r in rows]})


def _captions(conn, q: Question, photos: _Photos, role: str = "list", limit: int = 3) -> list[Fact]:
    if not q.concepts:
        return []
    where, params = photos.where([c["id"] for c in q.concepts])
    rows = conn.execute(
        "SELECT p.id, p.path, p.date, p.lat, p.lon, (SELECT text FROM captions c WHERE c.photo_id = p.id "
        "ORDER BY c.created_at DESC, c.id DESC LIMIT 1) AS caption FROM photos p "
        f"WHERE {where} AND caption IS NOT NULL ORDER BY p.date DESC LIMIT ?", [*params, limit]).fetchall()
    return [Fact("caption", f"{_photo(r)['file']}: \u201c{r['caption'][:200]}\u201d", role=role,
                 data={"photos": [_photo(r)], "caption": r["caption"]}) for r in rows]


def _what(conn, q: Question, photos: _Photos) -> list[Fact]:
    found = _captions(conn, q, photos)
    if q.concepts and not found:
        return [Fact("caption", f"No photo of {_who(q.concepts)}{q.period} has a caption yet.",
                     names=tuple(c["name"] for c in q.concepts))]
    return found


def _summary(conn, q: Question, photos: _Photos) -> list[Fact]:
    facts = _count(conn, q, photos)
    if any(f.data.get("count") for f in facts):
        facts += _first_or_last("first")(conn, q, photos) + _first_or_last("last")(conn, q, photos)
        facts += [_companions(conn, q, c, "context") for c in q.concepts]
        facts += _captions(conn, q, photos, role="context")
    return facts


_BUILDERS = {
    "count": _count, "first": _first_or_last("first"), "last": _first_or_last("last"), "where": _where,
    "together": _together, "photos": _photos_of, "who": _who_facts, "what": _what, "summary": _summary,
}


# -- phrasing and checking ----------------------------------------------------------------------------------
def plain(text: str) -> str:
    """'<Alice> and <Rex>' -> 'Alice and Rex'."""
    return re.sub(r"<([^<>]+)>", r"\1", text)


def check_phrase(text: str, facts: list[Fact]) -> str | None:
    """Why the phrasing cannot be used (a figure or name dropped, changed or invented), or None when it can."""
    if not text:
        return "empty"
    if text[-1] not in ".!?":
        return "cut off"
    got = phrase.figures(text)
    allowed = set().union(*(phrase.figures(f.text) for f in facts))
    missing = set().union(*(f.figures for f in facts)) - got
    if missing:
        return f"dropped {', '.join(sorted(missing))}"
    if got - allowed:
        return f"changed or invented {', '.join(sorted(got - allowed))}"
    for name in {n for f in facts for n in f.names}:
        if not re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", text, re.IGNORECASE):
            return f"dropped {name}"
    for file in {p["file"] for f in facts for p in f.data.get("photos", [])}:
        if file.casefold() not in text.casefold():
            return f"dropped {file}"
    facts_text = " ".join(f.text for f in facts)
    for name in phrase.EXAMPLE_NAMES:
        if re.search(rf"\b{name}\b", text) and not re.search(rf"\b{name}\b", facts_text):
            return f"copied the example's {name}"
    return None


def worth_phrasing(facts: list[Fact]) -> bool:
    """Short answers only (longer ones do not fit the LM's few words), and never 'I don't know <Bob>'."""
    main = [f for f in facts if f.role == "answer"]
    return bool(main) and len(" ".join(f.text for f in main)) <= MAX_PHRASED and \
        not any(f.kind == "unknown" for f in main)


def compose(question: str, facts: list[Fact], phraser) -> tuple[str, str, str | None]:
    """(answer, phrased_by, why the phrasing was not used)."""
    main = [f for f in facts if f.role == "answer"]
    listing = " ".join(f.text for f in facts if f.role == "list")
    draft = " ".join(f.text for f in main)
    body, by, problem = draft, TEMPLATE, None
    if phraser is not None and worth_phrasing(facts):
        # plain names read better and the small LM handles them better than <Alice>
        phrased = phraser.phrase(plain(question), [plain(f.text) for f in main])
        problem = check_phrase(phrased, main)
        if problem is None:
            body, by = phrased, phraser.name
        else:
            log.info("phrasing %r not used: %s", phrased, problem)
    return " ".join(t for t in (body, listing) if t), by, problem


# -- the entry point ------------------------------------------------------------------------------------------
_no_phraser: list[str] = []  # why SmolLM2 could not load, once per process: templates from then on


def shared_phraser(root) -> phrase.Phraser | None:
    """SmolLM2, loaded once per process (its de-quantised copy cached under the models folder); None if absent."""
    if _no_phraser:
        return None
    try:
        return phrase.shared(cache_dir=config.models_dir(root) / "smollm2-135m-instruct")
    except ModelUnavailable as exc:
        log.warning("library answers use templates: %s", exc)
        _no_phraser.append(str(exc))
        return None


def ask_library(library: Library, question: str, phraser=None, use_model: bool = True, store: bool = True) -> dict:
    """{"answer", "facts", "phrased_by", "concepts"} for a question about the whole library."""
    if not question or not question.strip():
        raise ValueError("ask a question, like: When did I last see <Rex>?")
    conn = library.db.read()
    q = parse_question(conn, question)
    facts = gather_facts(conn, q)
    if use_model and phraser is None and worth_phrasing(facts):
        phraser = shared_phraser(library.root)
    answer, by, problem = compose(q.text, facts, phraser if use_model else None)
    result = {"answer": answer, "facts": [f.as_dict() for f in facts], "phrased_by": by,
              "concepts": [c["identifier"] for c in q.concepts]}
    if problem:
        result["phrasing_rejected"] = problem
    if store:
        library.db.write(_store_answer, q.text, result, getattr(phraser, "name", None) if by != TEMPLATE else None)
        library.db.notify("answers", None)
    return result


def _store_answer(conn, question: str, result: dict, model: str | None) -> None:
    conn.execute("INSERT INTO answers(photo_id, question, answer, backend, model, concepts, facts, created_at) "
                 "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
                 (question, result["answer"], "smollm2" if model else TEMPLATE, model,
                  json.dumps(result["concepts"]), json.dumps(result["facts"], ensure_ascii=False), now()))
