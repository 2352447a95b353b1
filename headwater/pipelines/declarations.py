"""Pipeline declarations: what a user writes to make a captured table searchable or mirrored.

Two kinds of YAML file, one pipeline each, in the pipelines directory (`HW_PIPELINES_DIR`):
`indexes/<name>.yaml` (a search index fed by a table, optionally with summaries of a child table
folded in) and `mirrors/<name>.yaml` (a table copied into the analytics warehouse). Pure: reading
files yields `Pipelines` or a `DeclarationError` listing every problem with its file and field;
nothing here talks to a service. Checks that need the connectors (does the connector capture the
table?) or the database live with `plan` (`indexers.plan`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from headwater.pipelines.types import ColumnType, TypeError_, column_type

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Fields every document carries for the machinery (see indexers.documents); never a column's.
RESERVED_PREFIX = "hw_"
ANALYZERS = ("standard", "simple", "whitespace", "english", "folding")


class DeclarationError(ValueError):
    """Declarations that cannot be used; each line names the file and the field at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Strict):
    """A captured table: the connector file that captures it and its `schema.table`."""

    connector: str
    table: str

    @field_validator("table")
    @classmethod
    def _qualified(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(_COLUMN.match(p) for p in parts):
            raise ValueError(f"must be schema.table, like public.products; got {value!r}")
        return value

    @property
    def schema_name(self) -> str:
        return self.table.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.table.split(".")[1]


@dataclass(frozen=True)
class Binding:
    """Where a declared source is: its connector, its change topic and its database."""

    source: Source
    connector: str
    topic: str
    # A libpq connection string for reading the source table; it holds a password: never log.
    dsn: str = field(repr=False)
    database: str = ""


def _check_type(value: str) -> str:
    try:
        return column_type(value).name
    except TypeError_ as exc:
        raise ValueError(str(exc)) from None


def _keys(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str | list | tuple):
        raise ValueError("must be a column name or a list of column names")
    columns = (value,) if isinstance(value, str) else tuple(value)
    if not columns:
        raise ValueError("needs at least one column")
    bad = [c for c in columns if not _COLUMN.match(c)]
    if bad:
        raise ValueError(f"not a column name: {', '.join(bad)}")
    if len(set(columns)) != len(columns):
        raise ValueError("names a column twice")
    return columns


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"must be lower-case letters, digits and _; got {value!r}")
    return value


Keys = Annotated[tuple[str, ...], BeforeValidator(_keys)]
Name = Annotated[str, AfterValidator(_check_name)]
ColumnTypeName = Annotated[str, AfterValidator(_check_type)]


class IndexField(_Strict):
    """One field of a search document: a column (or a field the transform computes)."""

    type: ColumnTypeName
    # Full-text searchable (analysed with `analyzer`), with `weight` in the query.
    search: bool = False
    analyzer: str = "standard"
    weight: float = Field(default=1.0, gt=0, le=100)
    # Exact-match filter; a facet is also a filter and is counted in search results.
    filter: bool = False
    facet: bool = False
    sort: bool = False
    # Prefix completion (`/suggest`): an edge n-gram sub-field.
    suggest: bool = False
    # Kept in the document, not indexed.
    stored_only: bool = False
    # Not read from the row: the transform fills it.
    computed: bool = False
    # Optional column name when the field is named differently from its column.
    column: str | None = None

    @field_validator("analyzer")
    @classmethod
    def _known_analyzer(cls, value: str) -> str:
        if value not in ANALYZERS:
            raise ValueError(f"unknown analyzer {value!r}; known: {', '.join(ANALYZERS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IndexField:
        kind = self.column_type
        if self.stored_only and (self.search or self.filter or self.facet or self.sort):
            raise ValueError("stored_only cannot be combined with search, filter, facet or sort")
        if (self.search or self.suggest) and not kind.textual:
            raise ValueError(f"search and suggest need a text column, not {kind.name}")
        if (self.filter or self.facet or self.sort) and kind.name.startswith(("jsonb", "bytea")):
            raise ValueError(f"{kind.name} can only be stored (stored_only: true)")
        if self.computed and self.column:
            raise ValueError("a computed field has no column")
        return self

    @property
    def column_type(self) -> ColumnType:
        return column_type(self.type)


SummaryOp = Literal["count", "sum", "avg", "min", "max", "latest"]


class SummaryField(_Strict):
    """One figure of a child summary: `count`, or an aggregate of a child column."""

    op: SummaryOp
    column: str | None = None
    # For `latest`: the child column that orders the children (a time, a sequence). Required:
    # the order changes arrive in is not one the source table can reproduce for `verify`.
    by: str | None = None

    @model_validator(mode="after")
    def _needs_column(self) -> SummaryField:
        if self.op != "count" and not self.column:
            raise ValueError(f"{self.op} needs `column`")
        if self.op == "count" and self.column:
            raise ValueError("count takes no column")
        if self.by and self.op != "latest":
            raise ValueError("`by` only applies to latest")
        if self.op == "latest" and not self.by:
            raise ValueError("latest needs `by`, the column that orders the children")
        return self


class Summary(_Strict):
    """Rows of a child table folded into the parent document as figures (a review summary)."""

    name: Name
    source: Source
    # The child's own key, and the child columns holding the parent's document id (in order).
    id: Keys
    parent_key: Keys
    # Types of the child columns the figures read.
    columns: dict[str, ColumnTypeName] = Field(default_factory=dict)
    fields: dict[str, SummaryField] = Field(min_length=1)

    @model_validator(mode="after")
    def _columns_declared(self) -> Summary:
        for name, figure in self.fields.items():
            for used in (figure.column, figure.by):
                if used and used not in self.columns:
                    raise ValueError(f"fields.{name}: column {used!r} is not in `columns`")
            if figure.op in ("sum", "avg") and figure.column:
                kind = column_type(self.columns[figure.column])
                if kind.spark.split("(")[0] not in (
                    "short",
                    "int",
                    "long",
                    "decimal",
                    "float",
                    "double",
                ):
                    raise ValueError(f"fields.{name}: {figure.op} needs a numeric column")
        return self

    def field_type(self, name: str) -> ColumnType:
        """The type of summary figure `name` as it is stored in the parent document."""
        figure = self.fields[name]
        if figure.op == "count":
            return column_type("bigint")
        if figure.op == "avg":
            return column_type("double precision")
        assert figure.column is not None
        return column_type(self.columns[figure.column])

    @property
    def read_columns(self) -> tuple[str, ...]:
        """The child columns a summary needs from each child row, in a fixed order."""
        used = {c for f in self.fields.values() for c in (f.column, f.by) if c}
        return tuple(sorted(used))


class IndexDeclaration(_Strict):
    """A search index fed by one captured table."""

    name: Name
    source: Source
    id: Keys
    fields: dict[str, IndexField]
    drop: tuple[str, ...] = ()
    summaries: tuple[Summary, ...] = ()
    transform: str | None = None
    # Shown by `headwater search` when no columns are asked for.
    columns: tuple[str, ...] = ()
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("transform")
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        if value is not None and not _DOTTED.match(value):
            raise ValueError(f"must be a dotted path like package.module:function; got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IndexDeclaration:
        # Whole-declaration checks have no location of their own (pydantic reports them at the
        # top level): each problem starts with the field path at fault, one per line, and all
        # of them are reported at once (see `_problems`).
        problems: list[str] = []
        paths = {n: f"fields.{n}" for n in self.fields}
        for i, summary in enumerate(self.summaries):
            for n in summary.fields:
                paths.setdefault(n, f"summaries.{i}.fields.{n}")
        names = list(self.fields) + [f for s in self.summaries for f in s.fields]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            problems.append(f"{paths[clashes[0]]}: field names used twice: {', '.join(clashes)}")
        for name in names:
            if name.startswith(RESERVED_PREFIX) or not _COLUMN.match(name):
                problems.append(
                    f"{paths[name]}: field names are letters, digits and _, and must not "
                    f"start with {RESERVED_PREFIX!r}"
                )
        for key in self.id:
            field = self.fields.get(key)
            if field is None or field.computed:
                problems.append(f"id: column {key!r} must be a declared, non-computed field")
        dropped = sorted(set(self.drop) & {self.column_of(n) for n in self.fields})
        if dropped:
            problems.append(f"drop: names declared fields: {', '.join(dropped)}")
        computed = [n for n, f in self.fields.items() if f.computed]
        if computed and not self.transform:
            problems.append(
                f"transform: computed fields ({', '.join(computed)}) need a transform to fill them"
            )
        summary_names = [s.name for s in self.summaries]
        if len(set(summary_names)) != len(summary_names):
            problems.append("summaries: summary names must be unique")
        for i, summary in enumerate(self.summaries):
            if summary.source.connector != self.source.connector:
                problems.append(
                    f"summaries.{i}.source.connector: summary {summary.name} must come from the "
                    f"index's connector ({self.source.connector}), so that one snapshot sees "
                    "both tables"
                )
            if len(summary.parent_key) != len(self.id):
                problems.append(
                    f"summaries.{i}.parent_key: has {len(summary.parent_key)} columns, "
                    f"the id has {len(self.id)}"
                )
        unknown = [c for c in self.columns if c not in names]
        if unknown:
            problems.append(f"columns: names undeclared fields: {', '.join(unknown)}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def column_of(self, field: str) -> str:
        return self.fields[field].column or field

    @cached_property
    def row_fields(self) -> dict[str, IndexField]:
        """The fields read from the source row (not computed)."""
        return {n: f for n, f in self.fields.items() if not f.computed}

    @property
    def summary_fields(self) -> dict[str, tuple[Summary, SummaryField]]:
        return {n: (s, f) for s in self.summaries for n, f in s.fields.items()}

    @property
    def document_fields(self) -> tuple[str, ...]:
        """Every field a document holds for users: declared fields, then summary figures."""
        return tuple(self.fields) + tuple(self.summary_fields)


class MirrorDeclaration(_Strict):
    """A captured table copied into the analytics warehouse."""

    name: Name
    source: Source
    id: Keys
    # Every column the warehouse table has, with its type.
    columns: dict[str, ColumnTypeName]
    # `current`: one row per key, as the source has it now; `history` adds an SCD2 table.
    history: bool = False
    target_table: str | None = None
    # When Airflow runs the mirror: a preset (@hourly, @daily, ...) or a five-field cron line.
    schedule: str = "@hourly"
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        presets = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly")
        if value not in presets and len(value.split()) != 5:
            raise ValueError(
                f"must be one of {', '.join(presets)} or a cron line of five fields; got {value!r}"
            )
        return value

    @field_validator("columns")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [c for c in value if not _COLUMN.match(c) or c.startswith(RESERVED_PREFIX)]
        if bad:
            raise ValueError(f"not usable column names: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _keys_declared(self) -> MirrorDeclaration:
        missing = [k for k in self.id if k not in self.columns]
        if missing:
            raise ValueError(f"id: column(s) {', '.join(missing)} not in `columns`")
        return self

    @property
    def table(self) -> str:
        return self.target_table or self.name


class Pipelines(BaseModel):
    """Every declaration of a pipelines directory, checked together."""

    model_config = ConfigDict(frozen=True)

    indexes: dict[str, IndexDeclaration] = Field(default_factory=dict)
    mirrors: dict[str, MirrorDeclaration] = Field(default_factory=dict)

    def index(self, name: str) -> IndexDeclaration:
        try:
            return self.indexes[name]
        except KeyError:
            known = ", ".join(sorted(self.indexes)) or "none declared"
            raise KeyError(f"no index named {name!r} (known: {known})") from None

    def mirror(self, name: str) -> MirrorDeclaration:
        try:
            return self.mirrors[name]
        except KeyError:
            known = ", ".join(sorted(self.mirrors)) or "none declared"
            raise KeyError(f"no mirror named {name!r} (known: {known})") from None

    def sources(self) -> set[Source]:
        found = {d.source for d in self.indexes.values()} | {
            m.source for m in self.mirrors.values()
        }
        return found | {s.source for d in self.indexes.values() for s in d.summaries}


def _problems(path: Path, exc: ValidationError) -> list[str]:
    out = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        # A whole-model check has no location; each line of its message starts with the field
        # path.
        for line in message.splitlines():
            out.append(f"{path}: {where}: {line}" if where else f"{path}: {line}")
    return out


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        # One line per problem: PyYAML's own message spans several, with a source excerpt.
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise DeclarationError([f"{path}: {at}not valid YAML: {problem}"]) from None


def parse(path: Path, data: Any, kind: type[IndexDeclaration] | type[MirrorDeclaration]) -> Any:
    """One declaration from its parsed YAML; `DeclarationError` names the file and fields."""
    if not isinstance(data, dict):
        raise DeclarationError([f"{path}: must be a mapping (name, source, id, ...)"])
    problems = []
    name = data.get("name")
    if isinstance(name, str) and name != path.stem:
        problems.append(f"{path}: name: is {name!r} but the file is named {path.stem!r}")
    try:
        declaration = kind.model_validate({**data, "path": path})
    except ValidationError as exc:
        problems += _problems(path, exc)
    if problems:
        raise DeclarationError(problems)
    return declaration


def _files(directory: Path) -> Iterable[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load(directory: Path) -> Pipelines:
    """Every declaration under `directory` (`indexes/`, `mirrors/`), all checked before any is
    used: one bad file refuses the whole set, naming each problem."""
    problems: list[str] = []
    found: dict[str, dict[str, Any]] = {"indexes": {}, "mirrors": {}}
    kinds: dict[str, type[IndexDeclaration] | type[MirrorDeclaration]] = {
        "indexes": IndexDeclaration,
        "mirrors": MirrorDeclaration,
    }
    if not directory.is_dir():
        raise DeclarationError([f"{directory}: the pipelines directory does not exist"])
    for kind, model in kinds.items():
        for path in _files(directory / kind):
            try:
                declaration = parse(path, _read(path), model)
            except DeclarationError as exc:
                problems.extend(exc.problems)
                continue
            found[kind][declaration.name] = declaration
    if problems:
        raise DeclarationError(problems)
    return Pipelines(indexes=found["indexes"], mirrors=found["mirrors"])
