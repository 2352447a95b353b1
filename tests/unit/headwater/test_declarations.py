"""Pipeline declarations: the shop's files load; bad files are refused, every problem named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from headwater.pipelines.declarations import (
    DeclarationError,
    IndexDeclaration,
    MirrorDeclaration,
    Pipelines,
    load,
)

PIPELINES_DIR = Path(__file__).parents[3] / "pipelines"

Write = Callable[[str, str, "dict[str, Any] | str"], Path]


@pytest.fixture
def pipelines_dir(tmp_path: Path) -> Path:
    for kind in ("indexes", "mirrors"):
        (tmp_path / kind).mkdir()
    return tmp_path


@pytest.fixture
def write(pipelines_dir: Path) -> Write:
    """Writes `<kind>/<stem>.yaml` from a mapping (dumped as YAML) or raw text."""

    def _write(kind: str, stem: str, content: dict[str, Any] | str) -> Path:
        path = pipelines_dir / kind / f"{stem}.yaml"
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def index(name: str, /, **changes: Any) -> dict[str, Any]:
    """A valid index declaration named `name`, with top-level keys replaced by `changes`."""
    base: dict[str, Any] = {
        "name": name,
        "source": {"connector": "shop-source", "table": f"public.{name}"},
        "id": "id",
        "fields": {
            "id": {"type": "bigint", "filter": True},
            "title": {"type": "text", "search": True},
        },
    }
    return {**copy.deepcopy(base), **changes}


def summary(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "kids",
        "source": {"connector": "shop-source", "table": "public.kids"},
        "id": "id",
        "parent_key": "parent_id",
        "columns": {"score": "smallint", "label": "text"},
        "fields": {"kid_count": {"op": "count"}, "score_avg": {"op": "avg", "column": "score"}},
    }
    return {**base, **changes}


def mirror(name: str, /, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "source": {"connector": "shop-source", "table": f"public.{name}"},
        "id": "id",
        "columns": {"id": "bigint", "total": "numeric(10,2)", "placed_at": "timestamptz"},
    }
    return {**base, **changes}


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(DeclarationError) as err:
        load(directory)
    assert str(err.value) == "\n".join(err.value.problems)
    return err.value.problems


# --- the shop's declarations ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shop() -> Pipelines:
    return load(PIPELINES_DIR)


def test_the_shop_declarations_load(shop: Pipelines) -> None:
    assert set(shop.indexes) == {"products", "reviews"}
    assert shop.index("products").path == PIPELINES_DIR / "indexes" / "products.yaml"


def test_products_folds_in_the_review_summary(shop: Pipelines) -> None:
    products = shop.index("products")
    (reviews,) = products.summaries
    assert reviews.name == "reviews"
    assert reviews.source.table == "public.reviews"
    assert reviews.parent_key == ("product_id",)
    assert {n: f.op for n, f in reviews.fields.items()} == {
        "review_count": "count",
        "rating_avg": "avg",
    }
    assert reviews.field_type("review_count").name == "bigint"
    assert reviews.field_type("rating_avg").name == "double precision"
    assert reviews.read_columns == ("rating",)
    assert products.document_fields[-2:] == ("review_count", "rating_avg")


def test_reviews_maps_field_text_to_column_body(shop: Pipelines) -> None:
    reviews = shop.index("reviews")
    assert reviews.column_of("text") == "body"
    assert reviews.column_of("rating") == "rating"
    assert reviews.fields["text"].column_type.name == "text"


def test_sources_include_summary_sources(shop: Pipelines) -> None:
    assert {s.table for s in shop.sources()} == {
        "public.products",
        "public.reviews",
        "public.customers",
        "public.orders",
    }


def test_unknown_names_list_the_known_ones(shop: Pipelines) -> None:
    with pytest.raises(KeyError, match="known: products, reviews"):
        shop.index("orders")
    with pytest.raises(KeyError, match="known: customers, orders, products, reviews"):
        shop.mirror("interactions")


# --- problems, all reported at once ------------------------------------------------------------


def test_every_problem_of_several_bad_files_is_reported_at_once(
    pipelines_dir: Path, write: Write
) -> None:
    files = {
        "typo": write(
            "indexes",
            "typo",
            index(
                "typo",
                fields={
                    "id": {"type": "bigint", "serach": True},
                    "price": {"type": "numeric(10", "filter": True},
                },
            ),
        ),
        "ghost_id": write("indexes", "ghost_id", index("ghost_id", id="ghost")),
        "undeclared": write(
            "indexes",
            "undeclared",
            index(
                "undeclared",
                summaries=[summary(fields={"best": {"op": "max", "column": "missing"}})],
            ),
        ),
        "avg_text": write(
            "indexes",
            "avg_text",
            index(
                "avg_text", summaries=[summary(fields={"mean": {"op": "avg", "column": "label"}})]
            ),
        ),
        "bad_transform": write(
            "indexes", "bad_transform", index("bad_transform", transform="not a path")
        ),
        "no_transform": write(
            "indexes",
            "no_transform",
            index(
                "no_transform",
                fields={"id": {"type": "bigint"}, "score": {"type": "integer", "computed": True}},
            ),
        ),
        "stem": write("indexes", "stem", index("other_name")),
        "reserved": write(
            "indexes",
            "reserved",
            index("reserved", fields={"id": {"type": "bigint"}, "hw_flag": {"type": "boolean"}}),
        ),
        "foreign": write(
            "indexes",
            "foreign",
            index(
                "foreign",
                summaries=[summary(source={"connector": "other-source", "table": "public.kids"})],
            ),
        ),
        "broken": write("indexes", "broken", "name: broken\nsource: {connector: x, table: \n"),
        "mirror_type": write(
            "mirrors", "mirror_type", mirror("mirror_type", columns={"id": "bigint", "x": "money"})
        ),
    }
    write("indexes", "fine", index("fine"))

    problems = problems_of(pipelines_dir)

    expected = [
        (files["typo"], "fields.id.serach: Extra inputs are not permitted"),
        (files["typo"], "fields.price.type: cannot read the type 'numeric(10'"),
        (files["ghost_id"], "id: column 'ghost' must be a declared, non-computed field"),
        (files["undeclared"], "summaries.0: fields.best: column 'missing' is not in `columns`"),
        (files["avg_text"], "summaries.0: fields.mean: avg needs a numeric column"),
        (files["bad_transform"], "transform: must be a dotted path"),
        (files["no_transform"], "transform: computed fields (score) need a transform"),
        (files["stem"], "name: is 'other_name' but the file is named 'stem'"),
        (files["reserved"], "fields.hw_flag: field names are letters, digits and _, and must not"),
        (files["foreign"], "summaries.0.source.connector: summary kids must come from the index"),
        (files["broken"], "line 3, column 1: not valid YAML"),
        (files["mirror_type"], "columns.x: unknown type 'money'"),
    ]
    assert len(problems) == len(expected)
    for path, message in expected:
        assert any(p.startswith(f"{path}: {message}") for p in problems), (message, problems)
    # One line per problem, each naming its file.
    assert all(p.startswith(str(pipelines_dir)) and "\n" not in p for p in problems)
    assert not any("fine.yaml" in p for p in problems)


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        (
            {"source": {"connector": "shop-source", "table": "products"}},
            "source.table",
            "must be schema.table",
        ),
        ({"name": "Bad-Name"}, "name", "must be lower-case letters"),
        ({"id": []}, "id", "needs at least one column"),
        ({"id": ["id", "id"]}, "id", "names a column twice"),
        (
            {"fields": {"id": {"type": "bigint"}, "t": {"type": "text", "analyzer": "klingon"}}},
            "fields.t.analyzer",
            "unknown analyzer 'klingon'",
        ),
        (
            {"fields": {"id": {"type": "bigint"}, "n": {"type": "integer", "search": True}}},
            "fields.n",
            "search and suggest need a text column, not integer",
        ),
        (
            {"fields": {"id": {"type": "bigint"}, "t": {"type": "text", "weight": 0}}},
            "fields.t.weight",
            "greater than 0",
        ),
        (
            {
                "fields": {
                    "id": {"type": "bigint"},
                    "t": {"type": "text", "stored_only": True, "filter": True},
                }
            },
            "fields.t",
            "stored_only cannot be combined",
        ),
        (
            {"fields": {"id": {"type": "bigint"}, "j": {"type": "jsonb", "facet": True}}},
            "fields.j",
            "jsonb can only be stored",
        ),
        ({"drop": ["title"]}, "drop", "names declared fields: title"),
        ({"columns": ["id", "nope"]}, "columns", "names undeclared fields: nope"),
        (
            {"summaries": [summary(fields={"title": {"op": "count"}})]},
            "fields.title",
            "field names used twice: title",
        ),
        (
            {"summaries": [summary(fields={"hw_n": {"op": "count"}})]},
            "summaries.0.fields.hw_n",
            "must not start with 'hw_'",
        ),
        (
            {"fields": {"id": {"type": "bigint"}, "bad-name": {"type": "text"}}},
            "fields.bad-name",
            "field names are letters, digits and _",
        ),
        (
            {"summaries": [summary(), summary(fields={"other": {"op": "count"}})]},
            "summaries",
            "summary names must be unique",
        ),
        (
            {"summaries": [summary(parent_key=["a", "b"])]},
            "summaries.0.parent_key",
            "has 2 columns, the id has 1",
        ),
        (
            {"summaries": [summary(fields={"n": {"op": "count", "column": "score"}})]},
            "summaries.0.fields.n",
            "count takes no column",
        ),
        (
            {"summaries": [summary(fields={"s": {"op": "sum"}})]},
            "summaries.0.fields.s",
            "sum needs `column`",
        ),
        (
            {"id": "score", "fields": {"score": {"type": "integer", "computed": True}}},
            "id",
            "column 'score' must be a declared, non-computed field",
        ),
    ],
)
def test_index_problems_name_the_file_and_field(
    pipelines_dir: Path, write: Write, changes: dict[str, Any], where: str, message: str
) -> None:
    path = write("indexes", "things", index("things", **changes))
    problems = problems_of(pipelines_dir)
    # The problem the change makes, named by file and field (a change that also breaks
    # another rule is reported for that too: every problem is listed at once).
    named = [p for p in problems if p.startswith(f"{path}: {where}: ") and message in p]
    assert len(named) == 1, problems
    assert all(p.startswith(f"{path}: ") for p in problems)


def test_a_file_that_is_not_a_mapping_is_refused(pipelines_dir: Path, write: Write) -> None:
    path = write("indexes", "listy", "- a\n- b\n")
    assert problems_of(pipelines_dir) == [f"{path}: must be a mapping (name, source, id, ...)"]


def test_a_missing_pipelines_directory_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert problems_of(missing) == [f"{missing}: the pipelines directory does not exist"]


def test_an_empty_directory_declares_nothing(pipelines_dir: Path) -> None:
    assert load(pipelines_dir) == Pipelines()


def test_yml_files_are_read_too(pipelines_dir: Path) -> None:
    (pipelines_dir / "indexes" / "things.yml").write_text(yaml.safe_dump(index("things")))
    assert set(load(pipelines_dir).indexes) == {"things"}


def test_a_valid_index_declaration(pipelines_dir: Path, write: Write) -> None:
    write(
        "indexes",
        "things",
        index(
            "things",
            fields={
                "id": {"type": "int8"},
                "title": {"type": "varchar(80)", "column": "name", "search": True},
                "score": {"type": "integer", "computed": True},
            },
            transform="shop.transforms:score",
            drop=["secret"],
            summaries=[summary()],
            columns=["title", "kid_count"],
        ),
    )
    things: IndexDeclaration = load(pipelines_dir).index("things")
    assert things.id == ("id",)
    assert things.fields["id"].type == "bigint"  # the normalised type name
    assert things.fields["title"].type == "text"
    assert set(things.row_fields) == {"id", "title"}
    assert things.document_fields == ("id", "title", "score", "kid_count", "score_avg")


# --- mirrors -----------------------------------------------------------------------------------


def test_a_valid_mirror(pipelines_dir: Path, write: Write) -> None:
    write("mirrors", "orders", mirror("orders", id=["id"], history=True))
    orders: MirrorDeclaration = load(pipelines_dir).mirror("orders")
    assert orders.columns == {
        "id": "bigint",
        "total": "numeric(10,2)",
        "placed_at": "timestamptz",
    }
    assert orders.history
    assert orders.table == "orders"


def test_a_mirror_id_must_be_in_its_columns(pipelines_dir: Path, write: Write) -> None:
    path = write("mirrors", "orders", mirror("orders", id=["id", "region"]))
    assert problems_of(pipelines_dir) == [f"{path}: id: column(s) region not in `columns`"]


@pytest.mark.parametrize(
    ("columns", "where", "message"),
    [
        ({"id": "bigint", "total": "integer(5)"}, "columns.total", "integer takes no precision"),
        ({"id": "bigint", "tags": "text[][]"}, "columns.tags", "arrays of arrays"),
        ({"id": "bigint", "hw_live": "boolean"}, "columns", "not usable column names: hw_live"),
    ],
)
def test_mirror_column_types_are_checked(
    pipelines_dir: Path, write: Write, columns: dict[str, str], where: str, message: str
) -> None:
    path = write("mirrors", "orders", mirror("orders", columns=columns))
    problems = problems_of(pipelines_dir)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {where}: ")
    assert message in problems[0]


def test_every_problem_of_one_file_is_reported_at_once(tmp_path: Path) -> None:
    indexes = tmp_path / "indexes"
    indexes.mkdir()
    (indexes / "things.yaml").write_text(
        "name: stuff\n"
        "source: {connector: c, table: public.things}\n"
        "id: [missing]\n"
        "fields:\n"
        "  hw_secret: {type: text}\n"
        "  score: {type: integer, computed: true}\n"
        "drop: [hw_secret]\n"
        "columns: [nowhere]\n"
    )
    with pytest.raises(DeclarationError) as caught:
        load(tmp_path)
    text = "\n".join(caught.value.problems)
    for expected in (
        "things.yaml: name: is 'stuff' but the file is named 'things'",
        "things.yaml: fields.hw_secret:",
        "things.yaml: id: column 'missing'",
        "things.yaml: drop: names declared fields: hw_secret",
        "things.yaml: transform: computed fields (score)",
        "things.yaml: columns: names undeclared fields: nowhere",
    ):
        assert expected in text, expected
    assert all(line.startswith(str(indexes / "things.yaml")) for line in caught.value.problems)
