"""Segments: who a campaign or flow is for, written as JSON and compiled to one SQL query.

A definition is a tree. A node is `{"all": [node, …]}`, `{"any": [node, …]}`, `{"not": node}`
or a condition `{"field": F, "op": OP, "value": V}`. The top level may also say
`"reachable_only": false` to count customers who cannot get promos too (by default an audience
holds only linked, opted-in, reachable customers: those a message can reach).

The tree becomes one WHERE clause over `customers` (left-joined with `customer_metrics`): set
fields (tags, categories, topics) are EXISTS subqueries, day counts become comparisons of
timestamps with bound moments (so indexes apply and both SQLite and PostgreSQL agree), and a
condition is never NULL (a missing value satisfies `!=`, `not_in` and `not`, nothing else), so
`not` is the exact complement. Nothing loads customers into Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    extract,
    false,
    func,
    not_,
    or_,
    select,
    true,
)

from bot.models import (
    Cart,
    CartStatus,
    Click,
    Consent,
    Customer,
    CustomerEvent,
    CustomerMetrics,
    CustomerTag,
    Exclusion,
    Order,
    OrderItem,
    OrderStatus,
    Outbox,
    OutboxState,
    Product,
    Stage,
)

C = Customer.__table__.c  # type: ignore[attr-defined]
M = CustomerMetrics.__table__.c  # type: ignore[attr-defined]
DAY = timedelta(days=1)
MAX_DEPTH = 20
MAX_LIST = 1000

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
OPERATORS = (*COMPARISONS, "in", "not_in", "contains", "exists")


class SegmentError(ValueError):
    """A segment definition that cannot be compiled; the message names the place and why."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What a definition is compiled against: the shop, the moment and its saved segments."""

    shop_id: int
    now: datetime
    saved: Mapping[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- values


def _fail(path: str, message: str) -> SegmentError:
    return SegmentError(f"{path}: {message}" if path else message)


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"expected text, got {value!r}")
    if "\x00" in value or len(value) > 500:
        raise _fail(path, "text must be at most 500 characters, without NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, "text is not valid Unicode") from None
    return value.strip()


def _number(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(path, f"expected a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _fail(path, f"expected a number, got {value!r}") from None
    if not number.is_finite() or abs(number) > Decimal(10) ** 12:
        raise _fail(path, f"number out of range: {value!r}")
    return number


def _whole(value: Any, path: str) -> int:
    number = _number(value, path)
    if number != number.to_integral_value():
        raise _fail(path, f"expected a whole number, got {value!r}")
    if abs(number) > MAX_WHOLE:
        raise _fail(path, f"number out of range: {value!r} (at most {MAX_WHOLE:,})")
    return int(number)


MAX_DAYS = 100_000  # about 270 years: any moment a shop can mean, far from datetime's limits
MAX_WHOLE = 2**31 - 1  # counts are 32-bit columns


def _day_count(value: Any, path: str) -> int:
    n = _whole(value, path)
    if abs(n) > MAX_DAYS:
        raise _fail(path, f"{n} days is out of range (at most {MAX_DAYS:,})")
    return n


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, f"expected true or false, got {value!r}")
    return value


def _list(value: Any, path: str, item: Callable[[Any, str], Any]) -> list[Any]:
    if not isinstance(value, list) or not value or len(value) > MAX_LIST:
        raise _fail(path, f"expected a list of 1 to {MAX_LIST} values, got {value!r}")
    return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _choice(choices: Sequence[str], normalize: Callable[[str], str] = str.lower) -> Any:
    def check(value: Any, path: str) -> str:
        text = normalize(_text(value, path))
        if text not in choices:
            raise _fail(path, f"{value!r} is not one of {', '.join(choices)}")
        return text

    return check


# ----------------------------------------------------------------------------- fields


class FieldKind:
    """How one field compiles; each kind accepts its own operators."""

    ops: tuple[str, ...] = ()

    def compile(self, op: str, value: Any, scope: Scope, path: str) -> ColumnElement[bool]:
        """Return the condition as a never-NULL boolean SQL expression."""
        raise NotImplementedError


@dataclass(frozen=True)
class Scalar(FieldKind):
    """A column compared with values: text, numbers, money, a month."""

    column: Callable[[], Any]
    parse: Callable[[Any, str], Any]
    ops: tuple[str, ...] = (*COMPARISONS, "in", "not_in", "exists")
    # what a missing row means (no metrics yet: stage `prospect`, 0 orders), if anything
    missing: Any = None

    def compile(self, op: str, value: Any, scope: Scope, path: str) -> ColumnElement[bool]:
        """Compare the column; a missing value satisfies only != and not_in."""
        col = self.column()
        if self.missing is not None:
            return self._defaulted(col, op, value, path)
        if op == "exists":
            return col.is_not(None) if _boolean(value, path) else col.is_(None)
        if op == "contains":
            text = _text(value, path).lower().replace("\\", "\\\\")
            text = text.replace("%", "\\%").replace("_", "\\_")
            return and_(col.is_not(None), func.lower(col).like(f"%{text}%", escape="\\"))
        if op in ("in", "not_in"):
            values = _list(value, path, self.parse)
            if op == "in":
                return and_(col.is_not(None), col.in_(values))
            return or_(col.is_(None), col.not_in(values))
        parsed = self.parse(value, path)
        if op == "!=":
            return or_(col.is_(None), col != parsed)
        compare = {"=": col.__eq__, "<": col.__lt__, "<=": col.__le__, ">": col.__gt__}
        compare[">="] = col.__ge__
        return and_(col.is_not(None), compare[op](parsed))

    def _defaulted(self, col: Any, op: str, value: Any, path: str) -> ColumnElement[bool]:
        """Compare coalesce(col, missing) without hiding the column from indexes and joins.

        Whether the missing value satisfies the condition is decided here, so the database
        compares the stored column itself (`stage IN (…)`, not `coalesce(stage, …) IN (…)`).
        """
        if op == "exists":
            return true() if _boolean(value, path) else false()
        if op in ("in", "not_in"):
            values = _list(value, path, self.parse)
            stored = col.in_(values) if op == "in" else col.not_in(values)
            holds = (self.missing in values) == (op == "in")
        else:
            parsed = self.parse(value, path)
            stored = _COMPARE[op](col, parsed)
            holds = bool(_COMPARE[op](self.missing, parsed))
        return or_(col.is_(None), stored) if holds else and_(col.is_not(None), stored)


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Days(FieldKind):
    """Whole days since (or until) a moment: `last_order_days > 30`.

    Days since t are floor((now - t) / 1 day); each comparison becomes a range of t, so the
    database compares timestamps (indexable, the same on every backend).
    """

    column: Callable[[], Any]
    until: bool = False
    ops: tuple[str, ...] = (*COMPARISONS, "in", "not_in", "exists")

    def _range(self, n: int, scope: Scope) -> tuple[datetime, datetime]:
        """Return [low, high) of t for exactly n days."""
        if self.until:
            return scope.now + n * DAY, scope.now + (n + 1) * DAY
        return scope.now - (n + 1) * DAY, scope.now - n * DAY

    def _exactly(self, col: Any, n: int, scope: Scope) -> ColumnElement[bool]:
        low, high = self._range(n, scope)
        if self.until:
            return and_(col >= low, col < high)
        return and_(col > low, col <= high)

    def compile(self, op: str, value: Any, scope: Scope, path: str) -> ColumnElement[bool]:
        """Turn a day count comparison into a timestamp range."""
        col = self.column()
        if op == "exists":
            return col.is_not(None) if _boolean(value, path) else col.is_(None)
        if op in ("in", "not_in"):
            days = _list(value, path, _day_count)
            one_of = or_(*(self._exactly(col, n, scope) for n in days))
            if op == "in":
                return and_(col.is_not(None), one_of)
            return or_(col.is_(None), not_(one_of))
        n = _day_count(value, path)
        if op == "=":
            return and_(col.is_not(None), self._exactly(col, n, scope))
        if op == "!=":
            return or_(col.is_(None), not_(self._exactly(col, n, scope)))
        # days < n, <= n, > n, >= n as bounds on t (reversed for days since)
        if self.until:
            bound = {
                "<": col < scope.now + n * DAY,
                "<=": col < scope.now + (n + 1) * DAY,
                ">": col >= scope.now + (n + 1) * DAY,
                ">=": col >= scope.now + n * DAY,
            }
        else:
            bound = {
                "<": col > scope.now - n * DAY,
                "<=": col > scope.now - (n + 1) * DAY,
                ">": col <= scope.now - (n + 1) * DAY,
                ">=": col <= scope.now - n * DAY,
            }
        return and_(col.is_not(None), bound[op])


@dataclass(frozen=True)
class Many(FieldKind):
    """A set of values per customer (tags, categories, topics), matched case-insensitively.

    `contains` / `=` V: the set holds V; `in` [..]: holds any of them; `!=` / `not_in`: holds
    none of them; `exists`: the set is (not) empty.
    """

    values: Callable[[Scope], tuple[Any, ColumnElement[bool]]]
    ops: tuple[str, ...] = ("=", "!=", "contains", "in", "not_in", "exists")

    def compile(self, op: str, value: Any, scope: Scope, path: str) -> ColumnElement[bool]:
        """Build an EXISTS over the customer's set."""
        column, where = self.values(scope)
        if op == "exists":
            found = exists().where(where)
            return found if _boolean(value, path) else not_(found)
        if op in ("in", "not_in"):
            wanted = [v.lower() for v in _list(value, path, _text)]
        else:
            wanted = [_text(value, path).lower()]
        found = exists().where(where, func.lower(column).in_(wanted))
        return not_(found) if op in ("!=", "not_in") else found


@dataclass(frozen=True)
class Flag(FieldKind):
    """A yes/no fact about the customer, such as an open cart."""

    condition: Callable[[Scope], ColumnElement[bool]]
    ops: tuple[str, ...] = ("=", "!=", "exists")

    def compile(self, op: str, value: Any, scope: Scope, path: str) -> ColumnElement[bool]:
        """Return the fact or its complement."""
        wanted = _boolean(value, path)
        if op == "!=":
            wanted = not wanted
        condition = self.condition(scope)
        return condition if wanted else not_(condition)


class Membership(FieldKind):
    """Membership of another saved segment of the shop."""

    ops = ("=", "!=", "in", "not_in")

    def compile(self, op: str, value: Any, scope: Scope, path: str) -> ColumnElement[bool]:
        """Inline the saved segments' conditions (without their reachability filter)."""
        names = _list(value, path, _text) if op in ("in", "not_in") else [_text(value, path)]
        parts = []
        for name in names:
            if name not in scope.saved:
                raise _fail(path, f"no saved segment named {name!r}")
            if name in _COMPILING.get():
                raise _fail(path, f"segment {name!r} refers to itself")
            token = _COMPILING.set((*_COMPILING.get(), name))
            try:
                definition = scope.saved[name]
                parts.append(_node(_root_node(definition, f"segment {name!r}"), scope, name, 0))
            finally:
                _COMPILING.reset(token)
        member = or_(*parts)
        return not_(member) if op in ("!=", "not_in") else member


_COMPILING: ContextVar[tuple[str, ...]] = ContextVar("segments_compiling", default=())


def _customer_id() -> Any:
    return C.id


def _tags(scope: Scope) -> tuple[Any, ColumnElement[bool]]:
    t = CustomerTag.__table__.c  # type: ignore[attr-defined]
    return t.tag, and_(t.shop_id == scope.shop_id, t.customer_id == C.id)


def _bought(scope: Scope) -> tuple[Any, ColumnElement[bool]]:
    o, i = Order.__table__.c, OrderItem.__table__.c  # type: ignore[attr-defined]
    return i.category, and_(
        o.shop_id == scope.shop_id,
        o.customer_id == C.id,
        o.status == OrderStatus.PLACED.value,
        i.order_id == o.id,
    )


def _viewed(scope: Scope) -> tuple[Any, ColumnElement[bool]]:
    e, p = CustomerEvent.__table__.c, Product.__table__.c  # type: ignore[attr-defined]
    return p.category, and_(
        e.shop_id == scope.shop_id,
        e.customer_id == C.id,
        e.type == "product_viewed",
        p.shop_id == scope.shop_id,
        p.external_id == e.payload["product_id"].as_string(),
    )


def _topics(scope: Scope) -> tuple[Any, ColumnElement[bool]]:
    x = Exclusion.__table__.c  # type: ignore[attr-defined]
    return x.topic, and_(x.shop_id == scope.shop_id, x.customer_id == C.id)


def _cart_open(scope: Scope) -> ColumnElement[bool]:
    k = Cart.__table__.c  # type: ignore[attr-defined]
    return exists().where(
        k.shop_id == scope.shop_id, k.customer_id == C.id, k.status == CartStatus.OPEN.value
    )


def _last_message() -> Any:
    o = Outbox.__table__.c  # type: ignore[attr-defined]
    return (
        select(func.max(o.sent_at))
        .where(o.shop_id == C.shop_id, o.customer_id == C.id, o.state == OutboxState.SENT.value)
        .scalar_subquery()
    )


def _last_click() -> Any:
    k = Click.__table__.c  # type: ignore[attr-defined]
    return (
        select(func.max(k.clicked_at))
        .where(k.shop_id == C.shop_id, k.customer_id == C.id)
        .scalar_subquery()
    )


MAX_MONEY = Decimal("9999999999.9999")  # what NUMERIC(14,4) holds


def _money(value: Any, path: str) -> Decimal:
    number = _number(value, path)
    if abs(number) > MAX_MONEY:
        raise _fail(path, f"amount out of range: {value!r} (at most {MAX_MONEY:,.0f})")
    return number


def _country(value: Any, path: str) -> str:
    code = _text(value, path).upper()
    if len(code) != 2 or not code.isalpha():
        raise _fail(path, f"{value!r} is not a two-letter country code (e.g. UA, PL)")
    return code


def _score(low: int, high: int) -> Callable[[Any, str], int]:
    def check(value: Any, path: str) -> int:
        n = _whole(value, path)
        if not low <= n <= high:
            raise _fail(path, f"expected {low} to {high}, got {value!r}")
        return n

    return check


STAGES = tuple(s.value for s in Stage)
CONSENTS = tuple(c.value for c in Consent)

FIELDS: dict[str, FieldKind] = {
    "locale": Scalar(lambda: C.locale, _choice(("en", "ru", "uk", "pl"))),
    "country": Scalar(lambda: C.country, _country),
    "city": Scalar(lambda: C.city, _text, ops=(*COMPARISONS[:2], "in", "not_in", "contains")),
    "tags": Many(_tags),
    "consent": Scalar(lambda: C.consent, _choice(CONSENTS), ops=("=", "!=", "in", "not_in")),
    "stage": Scalar(
        lambda: M.stage,
        _choice(STAGES),
        ops=("=", "!=", "in", "not_in"),
        missing=Stage.PROSPECT.value,
    ),
    "rfm_r": Scalar(lambda: M.rfm_r, _score(1, 5)),
    "rfm_f": Scalar(lambda: M.rfm_f, _score(1, 5)),
    "rfm_m": Scalar(lambda: M.rfm_m, _score(1, 5)),
    "rfm_cell": Scalar(lambda: M.rfm_cell, _text, ops=("=", "!=", "in", "not_in", "exists")),
    "orders_count": Scalar(lambda: M.orders_count, _whole, missing=0),
    "revenue": Scalar(lambda: M.revenue, _money),
    "aov": Scalar(lambda: M.aov, _money),
    "last_order_days": Days(lambda: M.last_order_at),
    "first_order_days": Days(lambda: M.first_order_at),
    "expected_next_order_in_days": Days(lambda: M.expected_next_order_at, until=True),
    "bought_category": Many(_bought),
    "viewed_category": Many(_viewed),
    "cart_open": Flag(_cart_open),
    "birthday_month": Scalar(lambda: extract("month", C.birthday), _score(1, 12)),
    "nps": Scalar(lambda: C.nps_score, _score(0, 10)),
    "not_interested_topic": Many(_topics),
    "segment": Membership(),
    "linked_days": Days(lambda: C.linked_at),
    "last_message_days": Days(_last_message),
    "last_click_days": Days(_last_click),
}


# ----------------------------------------------------------------------------- the tree


def _root_node(definition: Any, path: str) -> Any:
    if not isinstance(definition, dict):
        raise _fail(path, "a segment definition is a JSON object")
    unknown = set(definition) - {"all", "any", "not", "field", "op", "value", "reachable_only"}
    if unknown:
        raise _fail(path, f"unknown key {sorted(unknown)[0]!r}")
    return {k: v for k, v in definition.items() if k != "reachable_only"}


def _node(node: Any, scope: Scope, path: str, depth: int) -> ColumnElement[bool]:
    if depth > MAX_DEPTH:
        raise _fail(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict) or not node:
        raise _fail(path, f"expected an object such as {{'all': [...]}}, got {node!r}")
    groups = [key for key in ("all", "any", "not") if key in node]
    if groups:
        if len(node) != 1:
            raise _fail(path, f"{groups[0]!r} stands alone in its object")
        key = groups[0]
        where = f"{path}.{key}" if path else key
        if key == "not":
            return not_(_node(node["not"], scope, where, depth + 1))
        children = node[key]
        if not isinstance(children, list):
            raise _fail(where, "expected a list of conditions")
        parts = [_node(c, scope, f"{where}[{i}]", depth + 1) for i, c in enumerate(children)]
        if not parts:  # all of nothing: everyone; any of nothing: no one
            return true() if key == "all" else false()
        return and_(*parts) if key == "all" else or_(*parts)
    return _condition(node, scope, path)


def _condition(node: dict[str, Any], scope: Scope, path: str) -> ColumnElement[bool]:
    extra = set(node) - {"field", "op", "value"}
    if extra:
        raise _fail(path, f"unknown key {sorted(extra)[0]!r} (a condition has field, op, value)")
    name = node.get("field")
    if name not in FIELDS:
        known = ", ".join(sorted(FIELDS))
        raise _fail(path, f"unknown field {name!r} (known: {known})")
    kind = FIELDS[name]
    op = node.get("op")
    if op not in OPERATORS:
        raise _fail(path, f"unknown operator {op!r} (known: {' '.join(OPERATORS)})")
    if op not in kind.ops:
        raise _fail(path, f"field {name!r} does not take {op!r} (it takes {' '.join(kind.ops)})")
    if "value" not in node:
        if op != "exists":
            raise _fail(path, f"{name} {op}: a value is missing")
        node = {**node, "value": True}
    return kind.compile(op, node["value"], scope, f"{path}.value" if path else "value")


def reachable() -> ColumnElement[bool]:
    """Return who a promo can reach: linked, opted in, not blocked, not erased."""
    return and_(
        C.telegram_chat_id.is_not(None),
        C.consent == Consent.OPTED_IN.value,
        C.unreachable_since.is_(None),
        C.redacted_hash.is_(None),
    )


def compile_segment(definition: Any, scope: Scope) -> ColumnElement[bool]:
    """Return the WHERE clause (over customers left-joined with metrics) for a definition."""
    node = _root_node(definition, "")
    reachable_only = definition.get("reachable_only", True)
    if not isinstance(reachable_only, bool):
        raise SegmentError(f"reachable_only: expected true or false, got {reachable_only!r}")
    token = _COMPILING.set(())
    try:
        condition = _node(node, scope, "", 0)
    finally:
        _COMPILING.reset(token)
    where = and_(C.shop_id == scope.shop_id, condition)
    return and_(where, reachable()) if reachable_only else where


def member_of(name: str) -> dict[str, Any]:
    """Return the definition of a saved segment's members (by reference, as `segment =`)."""
    return {"field": "segment", "op": "=", "value": name}


def audience(definition: Any, scope: Scope) -> Select[Any]:
    """Return SELECT customers.id for everyone the definition holds (one query)."""
    return (
        select(C.id)
        .select_from(
            Customer.__table__.outerjoin(  # type: ignore[attr-defined]
                CustomerMetrics.__table__,  # type: ignore[attr-defined]
                M.customer_id == C.id,
            )
        )
        .where(compile_segment(definition, scope))
    )


def check(definition: Any, saved: Mapping[str, Any] | None = None) -> None:
    """Raise SegmentError when the definition cannot be compiled (no database needed)."""
    compile_segment(
        definition, Scope(shop_id=0, now=datetime.now().astimezone(), saved=saved or {})
    )


__all__ = [
    "FIELDS",
    "OPERATORS",
    "Scope",
    "SegmentError",
    "audience",
    "check",
    "compile_segment",
    "member_of",
    "reachable",
]
