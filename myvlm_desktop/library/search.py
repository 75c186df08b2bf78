"""The search language: words, "phrases", @Name concept filters, AND / OR / NOT with parentheses, dates.

    beach                       caption, answer, concept or path words (FTS5, prefix with beach*)
    "birthday cake"             a phrase
    @Alice  @"Uncle Bob"        photos a concept is in
    2023  2023-06  2023-06-14   a year, month or day; 2023-06..2023-08 a range (inclusive)
    @Alice AND @Rex beach 2023  juxtaposition means AND; OR, NOT (or a leading -), ( ) group

A malformed query raises QueryError with a message for the user, never anything else.
"""

from __future__ import annotations

import calendar
import re
import sqlite3
from dataclasses import dataclass

from .db import Database


class QueryError(ValueError):
    """A query that cannot be understood; the message says what is wrong and where."""


# -- tokens ---------------------------------------------------------------------------------------------
_TOKEN = re.compile(r'''
    (?P<space>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<concept>@(?:"[^"]*"?|[^\s()"]*))
  | (?P<phrase>"[^"]*"?)
  | (?P<minus>-(?=\S))
  | (?P<word>[^\s()"]+)
''', re.VERBOSE)
_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")
OPERATORS = {"AND", "OR", "NOT"}
MAX_TERMS = 200  # words, phrases, names and dates; each one nests the SQL deeper (SQLite stops at depth 1000)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(query: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(query):
        kind, text = match.lastgroup, match.group()
        if kind == "space":
            continue
        if kind in ("phrase", "concept") and text.count('"') == 1:
            raise QueryError(f'unclosed quote at position {match.start() + 1}: add a closing "')
        if kind == "word" and text.upper() in OPERATORS and text.isupper():
            kind = text.upper()
        tokens.append(Token(kind, text, match.start()))
    return tokens


# -- syntax tree ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    fts: str  # an FTS5 expression for one term or phrase


@dataclass(frozen=True)
class Concept:
    name: str


@dataclass(frozen=True)
class DateRange:
    start: str  # inclusive ISO prefix bound
    end: str    # exclusive


@dataclass(frozen=True)
class Not:
    child: object


@dataclass(frozen=True)
class And:
    children: tuple


@dataclass(frozen=True)
class Or:
    children: tuple


class _Parser:
    def __init__(self, tokens: list[Token], query: str):
        self.tokens, self.query, self.i = tokens, query, 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self):
        if not self.tokens:
            raise QueryError("empty query: type words, @names or dates")
        node = self.or_expr()
        if self.peek() is not None:
            token = self.peek()
            raise QueryError(f"unexpected '{token.text}' at position {token.pos + 1}")
        return node

    def or_expr(self):
        children = [self.and_expr()]
        while self.peek() and self.peek().kind == "OR":
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self):
        children = [self.not_expr()]
        while self.peek() and self.peek().kind not in ("OR", "rparen"):
            if self.peek().kind == "AND":
                self.take()
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else And(tuple(children))

    def not_expr(self):
        token = self.peek()
        if token and token.kind in ("NOT", "minus"):
            self.take()
            return Not(self.not_expr())
        return self.atom()

    def atom(self):
        token = self.peek()
        if token is None:
            last = self.tokens[-1]
            raise QueryError(f"'{last.text}' at position {last.pos + 1} needs something after it")
        self.take()
        if token.kind == "lparen":
            node = self.or_expr()
            closing = self.peek()
            if closing is None or closing.kind != "rparen":
                raise QueryError(f"unclosed '(' at position {token.pos + 1}")
            self.take()
            return node
        if token.kind == "concept":
            name = token.text[1:].strip('"').strip()
            if name.startswith("<") and name.endswith(">"):  # the identifier form, @<Alice>
                name = name[1:-1].strip()
            if not name:
                raise QueryError(f"'@' at position {token.pos + 1} needs a name, like @Alice")
            return Concept(name)
        if token.kind == "phrase":
            words = token.text.strip('"').split()
            if not words:
                raise QueryError(f"empty phrase at position {token.pos + 1}")
            return Text('"' + " ".join(w.replace('"', '""') for w in words) + '"')
        if token.kind == "word":
            return _date_or_word(token)
        raise QueryError(f"unexpected '{token.text}' at position {token.pos + 1}")


def _date_or_word(token: Token):
    text = token.text
    if ".." in text:
        left, _, right = text.partition("..")
        start, end = _date_bounds(left, token), _date_bounds(right, token)
        if start is None or end is None:
            raise QueryError(f"'{text}' at position {token.pos + 1}: a date range looks like 2023-06..2023-08")
        if start[0] >= end[1]:
            raise QueryError(f"'{text}': the range ends before it starts")
        return DateRange(start[0], end[1])
    bounds = _date_bounds(text, token)
    if bounds is not None:
        return DateRange(*bounds)
    prefix = text.endswith("*")
    core = text.rstrip("*")
    if not re.search(r"\w", core):
        raise QueryError(f"'{text}' at position {token.pos + 1} has no letters or digits to search for")
    return Text('"' + core.replace('"', '""') + '"' + ("*" if prefix else ""))


def _date_bounds(text: str, token: Token) -> tuple[str, str] | None:
    match = _DATE.match(text)
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    if not 1800 <= year <= 2200:
        return None
    try:
        if month is None:
            return f"{year:04d}", f"{year + 1:04d}"
        if not 1 <= month <= 12:
            raise ValueError
        if day is None:
            ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
            return f"{year:04d}-{month:02d}", f"{ny:04d}-{nm:02d}"
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise ValueError
        return f"{year:04d}-{month:02d}-{day:02d}", f"{year:04d}-{month:02d}-{day:02d}T99"
    except ValueError:
        raise QueryError(f"'{text}' at position {token.pos + 1} is not a real date") from None


def parse(query: str):
    tokens = tokenize(query)
    terms = sum(t.kind in ("word", "phrase", "concept") for t in tokens)
    if terms > MAX_TERMS:
        raise QueryError(f"query too long: {terms} terms (at most {MAX_TERMS})")
    return _Parser(tokens, query).parse()


# -- SQL ------------------------------------------------------------------------------------------------
# The concept_photos view inlined, so SQLite can use the indexes for one concept (the view's compound
# select is evaluated for every concept first: 10x slower on 100k photos). Keep the two in step.
CONCEPT_SQL = """(p.id IN (
    SELECT photo_id FROM occurrences WHERE concept_id = ? AND present = 1
    UNION SELECT f.photo_id FROM faces f JOIN clusters c ON c.id = f.cluster_id WHERE c.concept_id = ? AND f.hidden = 0
    UNION SELECT cp.photo_id FROM cluster_photos cp JOIN clusters c ON c.id = cp.cluster_id WHERE c.concept_id = ?)
  AND p.id NOT IN (SELECT photo_id FROM occurrences WHERE concept_id = ? AND source = 'user' AND present = 0))"""


def _compile(node, params: list, concepts: dict[str, int]) -> str:
    if isinstance(node, Text):
        params.append(node.fts)
        return "p.id IN (SELECT rowid FROM photo_text WHERE photo_text MATCH ?)"
    if isinstance(node, Concept):
        params.extend([concepts[node.name.casefold()]] * 4)
        return CONCEPT_SQL
    if isinstance(node, DateRange):
        params.extend([node.start, node.end])
        return "(p.date >= ? AND p.date < ?)"
    if isinstance(node, Not):
        return f"NOT ({_compile(node.child, params, concepts)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(_compile(c, params, concepts) for c in node.children) + ")"


def _positive_text(node, negated: bool = False) -> list[str]:
    """Terms that should raise a photo's score (those under a NOT do not)."""
    if isinstance(node, Text):
        return [] if negated else [node.fts]
    if isinstance(node, Not):
        return _positive_text(node.child, not negated)
    if isinstance(node, (And, Or)):
        return [t for c in node.children for t in _positive_text(c, negated)]
    return []


def _concept_names(node) -> list[str]:
    if isinstance(node, Concept):
        return [node.name]
    if isinstance(node, Not):
        return _concept_names(node.child)
    if isinstance(node, (And, Or)):
        return [n for c in node.children for n in _concept_names(c)]
    return []


def concept_names(db: Database) -> list[str]:
    """Names for @completion."""
    return [r[0] for r in db.query("SELECT name FROM concepts ORDER BY name COLLATE NOCASE")]


def _resolve_concepts(db: Database, names: list[str]) -> dict[str, int]:
    resolved = {}
    for name in names:
        row = db.read().execute("SELECT id FROM concepts WHERE name_key(name) = name_key(?) OR identifier = ?",
                                (name, f"<{name}>")).fetchone()
        if row is None:
            known = ", ".join("@" + n for n in concept_names(db)[:8]) or "none yet: name a cluster in People & Pets"
            raise QueryError(f"no one and nothing is called @{name} (known: {known})")
        resolved[name.casefold()] = row[0]
    return resolved


def search(db: Database, query: str, limit: int = 500, offset: int = 0, order: str = "auto") -> list[dict]:
    """Photos (status ok) matching the query: [{"photo_id", "path", "score"}].

    `order="auto"`: by text relevance (BM25) when the query has words, else newest first;
    `"date"`: always newest first (scores are then 0: BM25 of a page alone costs as much as ranking all).
    """
    if order not in ("auto", "date", "relevance"):
        raise QueryError(f"unknown order '{order}': use auto, date or relevance")
    tree = parse(query)
    concepts = _resolve_concepts(db, _concept_names(tree))
    params: list = []
    where = _compile(tree, params, concepts)
    terms = " OR ".join(_positive_text(tree))
    if terms and order != "date":
        sql = ("WITH ranked AS MATERIALIZED (SELECT rowid AS id, -bm25(photo_text) AS score FROM photo_text "
               "WHERE photo_text MATCH ?) SELECT p.id, p.path, coalesce(r.score, 0) AS score FROM photos p "
               "LEFT JOIN ranked r ON r.id = p.id "
               f"WHERE p.status = 'ok' AND {where} ORDER BY score DESC, p.date DESC, p.id DESC LIMIT ? OFFSET ?")
        params = [terms, *params]
    else:
        # Walk photos newest first and stop at the page: broad matches end early and the worst case
        # (a rare word) is one pass over the index, where sorting every match of a broad word is not.
        sql = (f"SELECT p.id, p.path, 0.0 FROM photos p INDEXED BY photos_status_date WHERE p.status = 'ok' "
               f"AND {where} ORDER BY p.date DESC, p.id DESC LIMIT ? OFFSET ?")
    try:
        rows = db.read().execute(sql, [*params, limit, offset]).fetchall()
    except sqlite3.OperationalError as exc:  # FTS5 rejects some inputs the tokenizer let through
        raise QueryError(f"cannot search for that: {exc}") from None
    return [{"photo_id": r[0], "path": r[1], "score": round(float(r[2]), 4)} for r in rows]
