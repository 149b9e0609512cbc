"""SQL on FHIR v2 ViewDefinitions: flattening FHIR resources into rows, as the HL7 specification says.

A ViewDefinition names a resource type and the columns to take from it, each by a
FHIRPath expression, with ``forEach`` / ``forEachOrNull`` to unnest, ``unionAll`` to
concatenate, ``repeat`` to walk nested items, nested ``select`` for cross products,
``where`` to keep resources, ``constant`` values (``%name``) and ``%rowIndex``. elig
ships views for the resources it reads (``elig/data/views/*.json``): on the batch route
they are the only way FHIR reaches the screening tables (``elig.batch.assemble``), and
any SQL-on-FHIR implementation (Pathling on Spark, for one) can run them and produce
the same rows.

This runner implements the specification's directives and the FHIRPath subset of
navigation (with polymorphic ``value`` and ``ofType()``), indexing ``[n]``, ``where()``,
``exists()``, ``empty()``, ``first()``, ``last()``, ``count()``, ``not()``, ``join()``,
``extension(url)``, ``getResourceKey()``, ``getReferenceKey([Type])``, ``=``, ``!=``,
``<``, ``<=``, ``>``, ``>=``, ``and``, ``or``, ``|``, ``{}``, string, number and boolean
literals. It passes 125 of the 134 cases of the specification's test suite (the others
use FHIRPath arithmetic and ``lowBoundary()``/``highBoundary()``). A view that uses
something else raises ``ViewError`` naming the expression, rather than producing other
rows.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

from elig.diagnostics import EligError

VIEWS_DIR = Path(__file__).resolve().parent.parent / "data" / "views"


class ViewError(EligError):
    """A ViewDefinition this runner cannot run, or that the specification forbids."""


# ---------------------------------------------------------------- FHIRPath subset: parsing
_TOKEN = re.compile(r"""\s*(?:
    (?P<empty>\{\s*\})
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|=|<|>|\(|\)|\[|\]|\.|,|\|)
  | (?P<const>%[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>\$?[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ViewError(f"cannot read the FHIRPath expression {text!r} at {text[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None, kind: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        k, v = self.toks[self.i]
        return (value is None or v == value) and (kind is None or k == kind)

    def take(self, value: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks) or (value is not None and self.toks[self.i][1] != value):
            raise ViewError(f"cannot read the FHIRPath expression {self.text!r}: expected {value or 'more'}")
        self.i += 1
        return self.toks[self.i - 1]

    def parse(self):
        node = self.expr()
        if self.i != len(self.toks):
            raise ViewError(f"cannot read the FHIRPath expression {self.text!r}: unexpected {self.toks[self.i][1]!r}")
        return node

    def expr(self):
        node = self.conj()
        while self.peek("or", "ident"):
            self.take()
            node = ("or", node, self.conj())
        return node

    def conj(self):
        node = self.comparison()
        while self.peek("and", "ident"):
            self.take()
            node = ("and", node, self.comparison())
        return node

    def comparison(self):
        node = self.union()
        for op in ("=", "!=", "<", "<=", ">", ">="):
            if self.peek(op, "op"):
                self.take()
                return ("cmp", op, node, self.union())
        return node

    def union(self):
        node = self.invocation()
        while self.peek("|", "op"):
            self.take()
            node = ("union", node, self.invocation())
        return node

    def invocation(self):
        node = self.term(None)
        while True:
            if self.peek(".", "op"):
                self.take()
                node = self.term(node)
            elif self.peek("[", "op"):
                self.take()
                index = self.expr()
                self.take("]")
                node = ("index", node, index)
            else:
                return node

    def term(self, base):
        kind, value = self.take()
        if base is None and kind == "empty":  # {}: the empty collection
            return ("lit", [])
        if base is None and kind == "string":
            return ("lit", [bytes(value[1:-1], "utf-8").decode("unicode_escape")])
        if base is None and kind == "number":
            return ("lit", [float(value) if "." in value else int(value)])
        if base is None and kind == "const":
            return ("const", value[1:])
        if base is None and value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind != "ident":
            raise ViewError(f"cannot read the FHIRPath expression {self.text!r}: unexpected {value!r}")
        name = value.strip("`")
        if base is None and name in ("true", "false"):
            return ("lit", [name == "true"])
        if base is None and name == "$this":
            return ("this",)
        if self.peek("(", "op"):
            self.take()
            args = []
            while not self.peek(")", "op"):
                args.append(self.expr())
                if self.peek(",", "op"):
                    self.take()
            self.take(")")
            return ("call", base, name, args)
        return ("nav", base, name)


@lru_cache(maxsize=1024)
def parse_path(text: str):
    return _Parser(text).parse()


# ---------------------------------------------------------------- FHIRPath subset: evaluation
class _Typed:
    """A value reached through a polymorphic element (``value`` of ``valueQuantity``): it keeps its type."""

    __slots__ = ("type", "value")

    def __init__(self, type_: str, value: Any):
        self.type, self.value = type_, value


def _plain(x):
    return x.value if isinstance(x, _Typed) else x


_PRIMITIVES = {"string": str, "integer": int, "boolean": bool, "decimal": (int, float)}


def _is_type(x, name: str) -> bool:
    if isinstance(x, _Typed):
        return x.type.lower() == name.lower()
    if isinstance(x, dict):
        return x.get("resourceType") == name
    py = _PRIMITIVES.get(name)
    if py is None:
        return False
    if name in ("integer", "decimal") and isinstance(x, bool):
        return False
    return isinstance(x, py)


class _Context:
    def __init__(self, resource: dict, constants: dict[str, Any], row_index: int = 0,
                 choices: dict | None = None):
        self.resource = resource
        self.constants = constants
        self.row_index = row_index  # %rowIndex: the position in the nearest forEach, forEachOrNull or repeat
        # The choice elements of each object of the resource, found once (by id: the resource is not
        # changed while its rows are made).
        self.choices = {} if choices is None else choices

    def at(self, index: int) -> "_Context":
        return _Context(self.resource, self.constants, index, self.choices)


def evaluate_path(node, focus: list, ctx: _Context) -> list:
    kind = node[0]
    if kind == "lit":
        return list(node[1])
    if kind == "this":
        return focus
    if kind == "const":
        if node[1] == "rowIndex":
            return [ctx.row_index]
        if node[1] not in ctx.constants:
            raise ViewError(f"the constant %{node[1]} is not defined in the view")
        return [ctx.constants[node[1]]]
    if kind == "nav":
        base = focus if node[1] is None else evaluate_path(node[1], focus, ctx)
        return _navigate(base, node[2], ctx.choices)
    if kind == "index":
        base = evaluate_path(node[1], focus, ctx)
        index = evaluate_path(node[2], focus, ctx)
        if len(index) != 1 or not isinstance(_plain(index[0]), int):
            raise ViewError("an index must be one integer")
        i = _plain(index[0])
        return [base[i]] if 0 <= i < len(base) else []
    if kind == "union":
        out = []
        for x in evaluate_path(node[1], focus, ctx) + evaluate_path(node[2], focus, ctx):
            if _plain(x) not in [_plain(y) for y in out]:
                out.append(x)
        return out
    if kind in ("and", "or"):
        a, b = (_boolean(evaluate_path(n, focus, ctx)) for n in node[1:])
        if kind == "and":
            return [False] if a is False or b is False else ([] if a is None or b is None else [True])
        return [True] if a is True or b is True else ([] if a is None or b is None else [False])
    if kind == "cmp":
        _, op, left, right = node
        a, b = evaluate_path(left, focus, ctx), evaluate_path(right, focus, ctx)
        if not a or not b:
            return []
        if len(a) != 1 or len(b) != 1:
            if op in ("=", "!="):
                same = [_plain(x) for x in a] == [_plain(x) for x in b]
                return [same if op == "=" else not same]
            raise ViewError("a comparison needs single values")
        x, y = _plain(a[0]), _plain(b[0])
        try:
            return [{"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]]
        except TypeError:
            return []
    if kind == "call":
        return _call(node, focus, ctx)
    raise ViewError(f"unsupported FHIRPath node {kind}")


# The types a choice element ([x]) may take in FHIR R4, as they follow its name in JSON.
_FHIR_TYPES = frozenset("""
    Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid PositiveInt
    String Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment CodeableConcept Coding
    ContactPoint Count Distance Duration HumanName Identifier Money Period Quantity Range Ratio Reference
    SampledData Signature Timing ContactDetail Contributor DataRequirement Expression ParameterDefinition
    RelatedArtifact TriggerDefinition UsageContext Dosage Meta""".split())


_UPPER = re.compile(r"(?<=.)[A-Z]")


def _choices(item: dict) -> dict[str, list]:
    """The choice elements of an object by name: {'value': [('Quantity', {...})]} for valueQuantity.
    Only a FHIR type name may follow the name: Observation.status is not statusReason."""
    found: dict[str, list] = {}
    for key, value in item.items():
        for m in _UPPER.finditer(key):  # multipleBirthBoolean: the type is what follows the last name part
            if key[m.start():] in _FHIR_TYPES:
                found.setdefault(key[:m.start()], []).append((key[m.start():], value))
                break
    return found


def _navigate(items: list, name: str, cache: dict | None = None) -> list:
    out = []
    for item in items:
        item = item.value if isinstance(item, _Typed) else item
        if not isinstance(item, dict):
            continue
        if name in item:
            value = item[name]
            out.extend(value if isinstance(value, list) else [value])
            continue
        if item.get("resourceType") == name:  # Patient.name: a path may start with the type
            out.append(item)
            continue
        # A choice element: value → valueQuantity, valueString, ... (keeping the type).
        if cache is None:
            choices = _choices(item)
        else:
            key = id(item)
            choices = cache.get(key)
            if choices is None:
                choices = cache[key] = _choices(item)
        for type_, value in choices.get(name, ()):
            for v in value if isinstance(value, list) else [value]:
                out.append(_Typed(type_, v))
    return out


def _boolean(collection: list) -> bool | None:
    if not collection:
        return None
    if len(collection) == 1 and isinstance(_plain(collection[0]), bool):
        return _plain(collection[0])
    return True  # a non-empty collection of non-booleans is true in a boolean context


def _call(node, focus, ctx) -> list:
    _, base_node, name, args = node
    base = focus if base_node is None else evaluate_path(base_node, focus, ctx)
    if name == "where":
        return [x for x in base if _boolean(evaluate_path(args[0], [x], ctx)) is True]
    if name == "exists":
        if args:
            base = [x for x in base if _boolean(evaluate_path(args[0], [x], ctx)) is True]
        return [bool(base)]
    if name == "empty":
        return [not base]
    if name == "first":
        return base[:1]
    if name == "last":
        return base[-1:]
    if name == "count":
        return [len(base)]
    if name == "not":
        b = _boolean(base)
        return [] if b is None else [not b]
    if name == "ofType":
        type_name = args[0][2] if args and args[0][0] == "nav" else None
        if type_name is None:
            raise ViewError("ofType() takes a type name")
        return [x for x in base if _is_type(x, type_name)]
    if name == "join":
        sep = "".join(str(_plain(x)) for x in evaluate_path(args[0], focus, ctx)) if args else ""
        return [sep.join(str(_plain(x)) for x in base)]
    if name == "extension":
        url = [_plain(x) for x in evaluate_path(args[0], focus, ctx)]
        return [e for e in _navigate(base, "extension", ctx.choices) if isinstance(e, dict) and e.get("url") in url]
    if name == "getResourceKey":
        return [_plain(x)["id"] for x in base if isinstance(_plain(x), dict) and "id" in _plain(x)]
    if name == "getReferenceKey":
        wanted = args[0][2] if args and args[0][0] == "nav" else None
        out = []
        for x in base:
            ref = _plain(x).get("reference") if isinstance(_plain(x), dict) else None
            if not isinstance(ref, str):
                continue
            if ref.startswith("urn:uuid:"):  # a bundle-local reference: the type is not in it
                if wanted is None:
                    out.append(ref[len("urn:uuid:"):])
                continue
            parts = ref.split("/_history")[0].split("/")
            if len(parts) >= 2 and (wanted is None or parts[-2] == wanted):
                out.append(parts[-1])
        return out
    raise ViewError(f"the FHIRPath function {name}() is not supported by elig's view runner")


# ---------------------------------------------------------------- views
def _constants(view: dict) -> dict[str, Any]:
    out = {}
    for c in view.get("constant", []):
        values = [v for k, v in c.items() if k.startswith("value")]
        if "name" not in c or len(values) != 1:
            raise ViewError(f"constant {c.get('name', '?')!r} needs a name and exactly one value[x]")
        out[c["name"]] = values[0]
    return out


def _columns(select: dict) -> list[str]:
    names = [c["name"] for c in select.get("column", [])]
    for sub in select.get("select", []):
        names += _columns(sub)
    if select.get("unionAll"):
        first = _columns(select["unionAll"][0])
        for option in select["unionAll"][1:]:
            if _columns(option) != first:
                raise ViewError("every option of a unionAll must have the same columns, in the same order")
        names += first
    return names


def columns(view: dict) -> list[str]:
    """The view's column names, in order; raises ``ViewError`` for duplicates or mismatched unions."""
    names = []
    for select in view.get("select", []):
        names += _columns(select)
    if len(set(names)) != len(names):
        raise ViewError(f"the view {view.get('name', '')!r} names a column twice")
    return names


_ITERATIONS = ("forEach", "forEachOrNull", "repeat")


def _repeat(paths: list[str], node: Any, ctx: _Context) -> list:
    """``repeat``: the nodes each path reaches, then theirs, and so on, depth first (the node itself excluded)."""
    out = []
    for path in paths:
        for child in evaluate_path(parse_path(path), [node], ctx):
            out.append(child)
            out += _repeat(paths, child, ctx)
    return out


def _rows(select: dict, node: Any, ctx: _Context) -> list[dict]:
    kinds = [k for k in _ITERATIONS if k in select]
    if len(kinds) > 1:
        raise ViewError(f"a select may have only one of forEach, forEachOrNull and repeat (this one has "
                        f"{' and '.join(kinds)})")
    if kinds:
        kind = kinds[0]
        path = select[kind]
        inner = {k: v for k, v in select.items() if k != kind}
        if kind == "repeat":
            if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
                raise ViewError(f"'repeat' must be a list of FHIRPath expressions, found {path!r}")
            items = _repeat(path, node, ctx)
        else:
            if not isinstance(path, str):
                raise ViewError(f"'{kind}' must be a FHIRPath expression, found {path!r}")
            items = evaluate_path(parse_path(path), [node], ctx)
        if not items and kind == "forEachOrNull":  # one row of nulls (%rowIndex is 0 there)
            row = {name: None for name in _columns(inner)}
            row.update({c["name"]: 0 for c in inner.get("column", []) if c.get("path", "").strip() == "%rowIndex"})
            return [row]
        out = []
        for index, item in enumerate(items):
            out += _rows(inner, item, ctx.at(index))
        return out
    parts: list[list[dict]] = []
    row = {}
    for col in select.get("column", []):
        values = [_plain(v) for v in evaluate_path(parse_path(col["path"]), [node], ctx)]
        if col.get("collection"):
            row[col["name"]] = values
        elif len(values) > 1:
            raise ViewError(f"column {col['name']!r}: {col['path']!r} gives {len(values)} values; "
                            f"set 'collection': true or unnest with forEach")
        else:
            row[col["name"]] = values[0] if values else None
    parts.append([row])
    for sub in select.get("select", []):
        parts.append(_rows(sub, node, ctx))
    if select.get("unionAll"):
        union = []
        for option in select["unionAll"]:
            union += _rows(option, node, ctx)
        parts.append(union)
    out = [{}]
    for part in parts:
        out = [{**a, **b} for a in out for b in part]
    return out


def _where(node, resource: dict, ctx: _Context) -> bool | None:
    found = evaluate_path(node, [resource], ctx)
    if any(not isinstance(_plain(x), bool) for x in found):
        raise ViewError("a 'where' path must give a boolean (add .exists() to test for a value)")
    return _boolean(found)


def _prepare(view: dict) -> tuple[str, list[str], dict, list]:
    view_type = view.get("resource")
    if not isinstance(view_type, str) or not view_type:
        raise ViewError("a ViewDefinition must name its resource type ('resource': 'Observation')")
    return view_type, columns(view), _constants(view), [parse_path(w["path"]) for w in view.get("where", [])]


def run_view(view: dict, resources: Iterable[dict], prepared: tuple | None = None) -> Iterator[dict]:
    """The rows of a ViewDefinition over resources (those of other types are passed over).

    ``prepared`` is ``prepare(view)``, for a caller that runs one view over resources one at a time."""
    view_type, names, constants, wheres = prepared or _prepare(view)
    for resource in resources:
        if resource.get("resourceType") != view_type:
            continue
        ctx = _Context(resource, constants)
        if any(_where(w, resource, ctx) is not True for w in wheres):
            continue
        out = [{}]
        for select in view.get("select", []):
            rows = _rows(select, resource, ctx)
            out = [{**a, **b} for a in out for b in rows]
        for row in out:
            yield {name: row.get(name) for name in names}


prepare = _prepare


def load_view(name: str) -> dict:
    """One of elig's shipped views (``patient``, ``observation``, ``condition``, ...)."""
    return json.loads((VIEWS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def shipped_views() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(VIEWS_DIR.glob("*.json"))}


def holds_resource(entry) -> bool:
    """Whether a bundle entry holds a resource with a type (what a view can read)."""
    return (isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
            and isinstance(entry["resource"].get("resourceType"), str) and bool(entry["resource"]["resourceType"]))


def _uuid_of(full_url: str | None) -> str | None:
    if full_url and full_url.startswith(("urn:uuid:", "urn:oid:")):
        return full_url.split(":", 2)[2]
    if full_url and "/" in full_url:
        return full_url.rstrip("/").rsplit("/", 1)[-1]
    return full_url or None


def bundle_resources(bundle: dict, types: Iterable[str] | None = None) -> list[dict]:
    """The resources of a Bundle, each with a key and with references to the bundle's own full URLs
    (``urn:uuid:...``) rewritten as ``Type/id``, so that ``getReferenceKey()`` meets
    ``getResourceKey()`` as it does for resources from a server or a Bulk Data export.

    A resource without an id takes the last part of its full URL (or ``entry[i]``), the name
    elig's FHIR reader gives it; a second resource of one type and id is renamed ``<id>.entry[i]``
    (references resolve to the first, as in the reader). ``types`` keeps only resources of
    those types (the references to the others are rewritten all the same)."""
    raw = bundle.get("entry")
    local = {}
    picked = []
    seen = set()
    for i, e in enumerate(raw if isinstance(raw, list) else []):
        if not holds_resource(e):
            continue
        r = e["resource"]
        full_url = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
        if not (isinstance(r.get("id"), str) and r.get("id")):
            r = {**r, "id": _uuid_of(full_url) or f"entry[{i}]"}
        if (r["resourceType"], r["id"]) in seen:
            r = {**r, "id": f"{r['id']}.entry[{i}]"}
        seen.add((r["resourceType"], r["id"]))
        if full_url and full_url not in local:
            local[full_url] = f"{r['resourceType']}/{r['id']}"
        picked.append(r)

    wanted = set(types) if types is not None else None
    return [rewrite_references(r, local) for r in picked if wanted is None or r["resourceType"] in wanted]


# ---------------------------------------------------------------- view output as Parquet
_NUMERIC = {"decimal": "float64", "integer": "int64", "positiveInt": "int64", "unsignedInt": "int64",
            "integer64": "int64", "boolean": "bool_"}


def _column_specs(select: dict) -> list[dict]:
    out = list(select.get("column", []))
    for sub in select.get("select", []):
        out += _column_specs(sub)
    if select.get("unionAll"):
        out += _column_specs(select["unionAll"][0])
    return out


def arrow_schema(view: dict):
    """The Arrow schema of a view's rows: FHIR numbers and booleans as such, everything else (dates
    and times included, as FHIR writes them) as text; ``collection`` columns as lists."""
    import pyarrow as pa

    fields = []
    for spec in [c for s in view.get("select", []) for c in _column_specs(s)]:
        base = getattr(pa, _NUMERIC.get(spec.get("type", "string"), "string"))()
        fields.append(pa.field(spec["name"], pa.list_(base) if spec.get("collection") else base))
    return pa.schema(fields)


def _fits(value, type_) -> bool:
    import pyarrow as pa

    if value is None:
        return True
    if pa.types.is_boolean(type_):
        return isinstance(value, bool)
    if pa.types.is_integer(type_):
        return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63
    if pa.types.is_floating(type_):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e308
    return isinstance(value, str)


def arrow_rows(view: dict, rows: Iterable[dict]):
    """The rows as an Arrow table of ``arrow_schema(view)``. A value whose JSON type is not the
    column's (text where FHIR has a number: not valid FHIR) is written as null."""
    import pyarrow as pa

    schema = arrow_schema(view)
    cols: dict[str, list] = {f.name: [] for f in schema}
    for row in rows:
        for f in schema:
            x = row.get(f.name)
            if pa.types.is_list(f.type):
                x = [y for y in (x or []) if y is not None and _fits(y, f.type.value_type)]
            elif not _fits(x, f.type):
                x = None
            cols[f.name].append(x)
    return pa.table(cols, schema=schema)


def rewrite_references(node, names: dict[str, str], drop: str | None = None):
    """A copy of ``node`` whose ``reference`` strings found in ``names`` are replaced by their value,
    leaving out every key named ``drop`` (the bundle reader resolves fullUrls this way, the
    assembler ``#id`` references to contained resources)."""
    if isinstance(node, dict):
        out = {k: rewrite_references(x, names, drop) for k, x in node.items() if k != drop}
        if isinstance(out.get("reference"), str) and out["reference"] in names:
            out["reference"] = names[out["reference"]]
        return out
    if isinstance(node, list):
        return [rewrite_references(x, names, drop) for x in node]
    return node
