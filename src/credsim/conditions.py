"""The language of gate conditions: parsed once, evaluated one way.

A condition compares a person's standings, which the modules declare
(`Module.standings`): `grade<=C`, `score>=650`, `rating<4.2`, the bare flags
`listed` and `blacklisted`, combined with `and` and `or` (`and` binds
tighter; parentheses group). Comparisons follow the standing's order from
low to high standing: `grade<=C` is C or worse, `score<600` a participant
below 600.

A condition holds under the held state (what the systems show) and,
separately, under the true state (the same without false records); a
sanction resting on false records is one that holds under the first and not
the second. Under domain separation each term of a sanctioning gate holds
only for people whose trigger domain (what put them there) is the gate's
own domain.

`parse` gives the condition as a small tree (`Term`, `Both`, `Either`);
`Evaluation` evaluates trees on any set of people, from any `Source` of
standings (the running modules, or a person's row in a run folder).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np

from credsim.errors import InputError

LOW_OPS = ("<", "<=")  # a low standing: sanctions restrict it
HIGH_OPS = (">=", ">")  # a high standing: perks reward it
OPS = LOW_OPS + HIGH_OPS
KEYWORDS = ("and", "or")
MAX_DEPTH = 32  # parentheses within parentheses
NONE_DOMAIN = 255  # no trigger domain (no negative record yet)


class ConditionError(InputError, ValueError):
    """A gate condition that does not parse (a ValueError too, so that scenario
    validation reports it under the gate's key)."""


@dataclass(frozen=True)
class Standing:
    """A per-person standing that gate conditions may read, as its module declares it.

    A flag (no `ops`) is met when its held count is above 0. Otherwise the value
    compared is a name from `names` (ordered from the highest standing down and
    stored as its position, so `grade<=C` reads 'position of C or more') or a number
    in `bounds`. Held values below `least` mark someone who takes no part and meets
    no comparison (a composite score of -1)."""

    name: str
    held: str  # what the held value is, for docs ('points grade')
    true: str  # what the true value is: the same without false records
    ops: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    bounds: tuple[float, float] | None = None
    least: float = -math.inf
    # The trigger domain of every person ("court"), or "" when the module keeps one per
    # person (the domain of their last negative record).
    domain: str = ""
    # The held value everyone starts with, when they all start the same (None: values
    # differ from the start); people elsewhere are the only ones a condition that
    # excludes it can reach.
    initial: float | None = None
    # The ledger kind of the rows that record each change of the held value (value
    # after, delta): gates applied once, on entering a condition, need one.
    ledger_kind: int | None = None
    # Held values move only at the module's refreshes.
    refreshed: bool = False

    @property
    def flag(self) -> bool:
        return not self.ops

    def read(self, text: str) -> float:
        """The stored value a comparison's text stands for (ConditionError if none)."""
        if self.names:
            if text not in self.names:
                raise ConditionError(f"{self.name} takes one of {', '.join(self.names)}, "
                                     f"got {text!r}")
            return float(self.names.index(text))
        lo, hi = self.bounds or (-math.inf, math.inf)
        value = float(text) if NUMBER_RE.fullmatch(text) else math.nan
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ConditionError(f"the threshold of {self.name} must be a number in "
                                 f"[{lo:g}, {hi:g}], got {text!r}")
        return value

    def show(self, value: float) -> str:
        """The text of a stored value, as `read` takes it back."""
        if self.names:
            return self.names[int(value)]
        return str(int(value)) if value.is_integer() else repr(value)

    def interval(self, op: str, value: float) -> tuple[float, float]:
        """Held (or true) values x that meet `<standing> op value`: lo <= x < hi."""
        if self.flag:
            return 1.0, math.inf
        if self.names:  # positions count down the standing: compare them reversed
            return {"<=": (value, math.inf), "<": (value + 1, math.inf),
                    ">=": (-math.inf, value + 0.5), ">": (-math.inf, value - 0.5)}[op]
        above = math.nextafter(value, math.inf)
        return {"<": (self.least, value), "<=": (self.least, above),
                ">=": (max(value, self.least), math.inf),
                ">": (max(above, self.least), math.inf)}[op]

    def allowed(self) -> str:
        """The comparisons this standing takes, for messages and docs."""
        if self.flag:
            return self.name
        if self.names:
            what = "X in " + ", ".join(self.names)
        else:
            lo, hi = self.bounds or (-math.inf, math.inf)
            what = f"N in [{lo:g}, {hi:g}]"
        letter = "X" if self.names else "N"
        return " / ".join(f"{self.name}{op}{letter}" for op in self.ops) + f" ({what})"


# A plain decimal number: float() alone would also read 'nan', 'inf', '1_000' and
# non-ASCII digits.
NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
VALUE_RE = re.compile(r"\s*(?P<value>[^\s()<>=]+)")
# A standing's name; a further instance's is qualified by the instance (province.grade).
WORD = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?"
TOKEN_RE = re.compile(r"\s*(?:(?P<op><=|>=|<|>)|(?P<paren>[()])|"
                      r"(?P<word>" + WORD + r")|(?P<number>" + NUMBER_RE.pattern + "))",
                      re.ASCII)


# The tree -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """`<standing> <op> <value>`, or a bare flag (op "")."""

    standing: str
    op: str = ""
    value: float = 0.0
    text: str = ""  # the value as `Standing.show` writes it

    def __str__(self) -> str:
        return f"{self.standing}{self.op}{self.text}"

    def terms(self) -> Iterator[Term]:
        yield self


@dataclass(frozen=True)
class Both:
    """All parts hold."""

    parts: tuple[Condition, ...]

    def __str__(self) -> str:
        return " and ".join(f"({p})" if isinstance(p, Either) else str(p) for p in self.parts)

    def terms(self) -> Iterator[Term]:
        for p in self.parts:
            yield from p.terms()


@dataclass(frozen=True)
class Either:
    """Some part holds."""

    parts: tuple[Condition, ...]

    def __str__(self) -> str:
        return " or ".join(str(p) for p in self.parts)

    def terms(self) -> Iterator[Term]:
        for p in self.parts:
            yield from p.terms()


Condition = Term | Both | Either


def standings_of(cond: Condition) -> list[str]:
    """The standings a condition reads, in order of first use."""
    return list(dict.fromkeys(t.standing for t in cond.terms()))


def rewards(cond: Condition) -> bool | None:
    """True if every term rewards a high standing (a perk's condition), False if every
    term restricts a low one or is a flag (a sanction's), None if it mixes them."""
    high = {t.op in HIGH_OPS for t in cond.terms()}
    return high.pop() if len(high) == 1 else None


def evaluate(cond: Condition, term: Callable[[Term], tuple[np.ndarray, np.ndarray]]
             ) -> tuple[np.ndarray, np.ndarray]:
    """(held, true) of a condition from those of its terms."""
    if isinstance(cond, Term):
        return term(cond)
    parts = [evaluate(p, term) for p in cond.parts]
    join = np.logical_and if isinstance(cond, Both) else np.logical_or
    held, true = parts[0]
    for h, t in parts[1:]:
        held, true = join(held, h), join(true, t)
    return held, true


def initially_meets(cond: Condition, initial: Callable[[str], float | None],
                    standings: Mapping[str, Standing]) -> bool:
    """Whether someone in the initial state may meet the condition: a standing whose
    values differ from the start (initial None) may meet any comparison."""
    def term(t: Term) -> tuple[np.ndarray, np.ndarray]:
        x = initial(t.standing)
        lo, hi = standings[t.standing].interval(t.op, t.value)
        ok = np.array([x is None or lo <= x < hi])
        return ok, ok

    return bool(evaluate(cond, term)[0][0])


def registered() -> dict[str, Standing]:
    """Every standing a registered module declares (credsim's own and plug-ins')."""
    from credsim.modules.registry import kinds

    return {name: st for cls in kinds().values() for name, st in cls.standings.items()}


# Parsing ------------------------------------------------------------------------------
def parse(text: str, standings: Mapping[str, Standing]) -> Condition:
    """The tree of a condition over `standings`, or ConditionError saying what is allowed."""
    tokens = _tokens(text, standings)
    if not tokens:
        raise ConditionError("a condition is empty; " + grammar_line(standings))
    parser = _Parser(tokens, standings, text)
    cond = parser.either()
    if parser.pos < len(tokens):
        raise parser.error(f"unexpected {tokens[parser.pos]!r}")
    return cond


def grammar_line(standings: Mapping[str, Standing]) -> str:
    """What a condition may say, in one line for messages."""
    if not standings:
        return "no system provides a standing a condition could read"
    return ("use " + ", ".join(s.allowed() for s in standings.values())
            + ", combined with 'and' / 'or' and parentheses")


def _tokens(text: str, standings: Mapping[str, Standing]) -> list[str]:
    tokens, pos, end = [], 0, len(text.rstrip())
    while pos < end:
        # After an operator comes a value: all of it up to a space or parenthesis, so that
        # '1_000' or '5e2x' is reported as a bad value, not as stray words.
        m = (VALUE_RE if tokens and tokens[-1] in OPS else TOKEN_RE).match(text, pos)
        if m is None and tokens and tokens[-1] in OPS:
            m = TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ConditionError(f"condition {text!r}: cannot read {text[pos:].strip()[:12]!r} "
                                 f"at position {pos}; {grammar_line(standings)}")
        tokens.append(m.group(m.lastgroup))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent: either := both ('or' both)*; both := atom ('and' atom)*;
    atom := '(' either ')' | standing [op value]."""

    def __init__(self, tokens: list[str], standings: Mapping[str, Standing], text: str):
        self.tokens, self.standings, self.text, self.pos = tokens, standings, text, 0
        self.depth = 0

    def error(self, what: str) -> ConditionError:
        return ConditionError(f"condition {self.text!r}: {what}; {grammar_line(self.standings)}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise self.error("it ends too soon")
        self.pos += 1
        return tok

    def either(self) -> Condition:
        parts = [self.both()]
        while self.peek() == "or":
            self.pos += 1
            parts.append(self.both())
        return _join(Either, parts)

    def both(self) -> Condition:
        parts = [self.atom()]
        while self.peek() == "and":
            self.pos += 1
            parts.append(self.atom())
        return _join(Both, parts)

    def atom(self) -> Condition:
        tok = self.take()
        if tok == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"parentheses nest more than {MAX_DEPTH} deep")
            inner = self.either()
            self.depth -= 1
            if self.peek() != ")":
                raise self.error("a '(' is not closed")
            self.pos += 1
            return inner
        s = self.standings.get(tok)
        if s is None or tok in KEYWORDS:
            raise self.error(f"{tok!r} is not a standing")
        # Terms name the standing as the condition does (a further instance's qualified:
        # province.grade), which is how the sources look it up.
        if s.flag:
            if self.peek() in OPS:
                raise self.error(f"{s.name} is a flag and takes no comparison")
            return Term(tok)
        op = self.peek()
        if op not in s.ops:
            got = "nothing" if op is None else repr(op)
            raise self.error(f"{s.name} takes {' or '.join(s.ops)}, got {got}")
        self.pos += 1
        text = self.peek()
        if text is None or text in "()":
            what = (f"one of {', '.join(s.names)}" if s.names
                    else f"a threshold in [{s.bounds[0]:g}, {s.bounds[1]:g}]" if s.bounds
                    else "a threshold")
            raise self.error(f"{s.name}{op} needs {what}")
        self.pos += 1
        try:
            value = s.read(text)
        except ConditionError as exc:
            raise ConditionError(f"condition {self.text!r}: {exc}") from None
        return Term(tok, op, value, s.show(value))


def _join(kind: type[Both] | type[Either], parts: list[Condition]) -> Condition:
    """One part as itself; nested parts of the same kind flattened, so that a tree
    prints to a text that parses back to the same tree."""
    if len(parts) == 1:
        return parts[0]
    flat: list[Condition] = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, kind) else (p,))
    return kind(tuple(flat))


# Evaluation ---------------------------------------------------------------------------
@cache
def domain_code(domain: str) -> int:
    """A domain's code in the results (its position in scenario.model.DOMAINS)."""
    from credsim.scenario.model import DOMAINS

    return DOMAINS.index(domain)


class Source(Protocol):
    """Where an evaluation reads standings of people `ids`."""

    def values(self, standing: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Held and true values."""
        ...

    def domains(self, standing: str, ids: np.ndarray) -> np.ndarray:
        """Trigger domains (codes of scenario.model.DOMAINS, NONE_DOMAIN for none), of a
        standing without a fixed domain."""
        ...


def in_range(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """lo <= x < hi (False for NaN). Values in double precision (a float32 rating as the
    compiled kernels compare it); whole numbers with whole-number bounds, and an infinite
    bound costs them no pass."""
    if not np.issubdtype(x.dtype, np.integer):
        lo, hi = np.float64(lo), np.float64(hi)
        return (x >= lo) & (x < hi)
    if lo == math.inf or hi == -math.inf:
        return np.zeros(len(x), dtype=np.bool_)
    # For whole x, x >= lo is x >= ceil(lo) and x < hi is x < ceil(hi).
    above = None if lo == -math.inf else x >= math.ceil(lo)
    below = None if hi == math.inf else x < math.ceil(hi)
    if above is None or below is None:
        one = above if below is None else below
        return np.ones(len(x), dtype=np.bool_) if one is None else one
    return above & below


class Evaluation:
    """Conditions on people `ids`, each standing's values gathered once and each term
    evaluated once (a dozen gates may restrict the listed).

    `separate`: domain separation, under which a sanction's term holds only where the
    standing's trigger domain is the gate's domain."""

    def __init__(self, ids: np.ndarray, source: Source, standings: Mapping[str, Standing],
                 separate: bool = False):
        self.ids, self.source, self.standings, self.separate = ids, source, standings, separate
        self._values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._domains: dict[str, np.ndarray] = {}
        self._terms: dict[tuple[Term, int], tuple[np.ndarray, np.ndarray]] = {}

    def values(self, standing: str) -> tuple[np.ndarray, np.ndarray]:
        if standing not in self._values:
            self._values[standing] = self.source.values(standing, self.ids)
        return self._values[standing]

    def domains(self, standing: str) -> np.ndarray:
        """The trigger domain of each person for a standing."""
        if standing not in self._domains:
            fixed = self.standings[standing].domain
            self._domains[standing] = (
                np.full(len(self.ids), domain_code(fixed), dtype=np.uint8) if fixed
                else self.source.domains(standing, self.ids))
        return self._domains[standing]

    def meets(self, cond: Condition, gate_domain: int = -1, sanction: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
        """(meets the condition under the held state, under the true state)."""
        return evaluate(cond, lambda t: self.term(t, gate_domain if sanction else -1))

    def term(self, t: Term, gate_domain: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """A term's (held, true); gate_domain >= 0 under separation: only where the
        trigger domain is gate_domain."""
        gate_domain = gate_domain if self.separate else -1
        key = (t, gate_domain)
        if key not in self._terms:
            lo, hi = self.standings[t.standing].interval(t.op, t.value)
            x, xt = self.values(t.standing)
            held, true = in_range(x, lo, hi), in_range(xt, lo, hi)
            if gate_domain >= 0:
                same = self.domains(t.standing) == gate_domain
                held, true = held & same, true & same
            self._terms[key] = held, true
        return self._terms[key]

    def trigger(self, cond: Condition, gate_domain: int = -1, sanction: bool = False
                ) -> np.ndarray:
        """Each person's trigger domain for a condition: that of its first term that
        holds under the held state (of its first term if none does)."""
        terms = list(cond.terms())
        out = self.domains(terms[0].standing)
        if len(terms) > 1:
            out = out.copy()
            for t in reversed(terms):
                held, _ = self.term(t, gate_domain if sanction else -1)
                out[held] = self.domains(t.standing)[held]
        return out


# Docs -----------------------------------------------------------------------------------
def grammar_table(standings: Mapping[str, Standing], providers: Mapping[str, str]) -> str:
    """The standings a condition may read, as a Markdown table (docs/odd.md shows it)."""
    lines = ["| standing | module | held value | true value | comparisons | trigger domain |",
             "|---|---|---|---|---|---|"]
    for s in standings.values():
        if s.flag:
            comps = f"`{s.name}` (a flag: held value > 0)"
        else:
            comps = " / ".join(f"`{s.name}{op}X`" if s.names else f"`{s.name}{op}N`"
                             for op in s.ops)
            comps += (", X in " + ", ".join(s.names) if s.names else
                      f", N in [{s.bounds[0]:g}, {s.bounds[1]:g}]" if s.bounds else "")
            if s.least > -math.inf:
                comps += f"; a value below {s.least:g} meets none"
        domain = f"`{s.domain}`" if s.domain else "`last_neg_domain` of the module"
        lines.append(f"| `{s.name}` | {providers[s.name]} | {s.held} | {s.true} | {comps} "
                     f"| {domain} |")
    return "\n".join(lines)
