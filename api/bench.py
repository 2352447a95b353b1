"""`headwater bench search`: requests/s and latency of search through the HTTP API, against
the same queries sent to Elasticsearch directly in the same run (the ceiling).

1. A fixed query mix, drawn with a fixed seed from the index itself: words of a sample of its
   documents (one or two per query), prefixes of them for suggestions, facet values as
   filters, the sortable fields, pages 1 to 3 (`query_mix`, pure).
2. The API under test: started by the bench (`python -m api.serve` on a free port, as
   `headwater run` starts it, with `processes` uvicorn workers) or one already running.
3. For each concurrency step (1, 2, 4, 8, 16 clients, each one request at a time on its own
   keep-alive connection), the mix to Elasticsearch's `_search` (the bodies the API would
   send, built by the same functions) and then through the API, each for a warm-up and a
   measured time: requests/s, p50/p95/p99, errors, and the cores each process used.

Client, API and Elasticsearch share the machine: its cores bound all three, which the
per-process cores of each step show.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from api.keys import direct_store
from api.serve import ServedApi
from headwater.pipelines.declarations import IndexDeclaration
from headwater.settings import Settings
from indexers.search import (
    SEARCH_FILTER_PATH,
    SUGGEST_FILTER_PATH,
    search_body,
    searchable,
    sortable,
    suggest_body,
)

Progress = Callable[[str], None]

STEPS = (1, 2, 4, 8, 16)
# The goal at GOAL_CLIENTS concurrent clients: p95 through the API, and its share of
# Elasticsearch's own throughput.
GOAL_CLIENTS = 8
GOAL_P95_MS = 20.0
GOAL_RATIO = 0.8
SEED = 12
_WORD = re.compile(r"[a-z]{3,}")


@dataclass(frozen=True)
class Query:
    """One request of the mix: its kind, route (`search` or `suggestions`) and parameters."""

    kind: str
    route: str
    params: tuple[tuple[str, str], ...]

    def path(self, index: str) -> str:
        return f"/api/v1/indexes/{index}/{self.route}?{urlencode(self.params)}"


# How often each kind comes up in the mix (out of 100).
KINDS = {
    "words": 35,
    "words + filter": 15,
    "filter + sort": 10,
    "words + sort, page 2-3": 15,
    "suggest": 25,
}


def words_of(documents: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[str]:
    """The distinct lower-case words (3 letters or more) of `fields`, in order of appearance."""
    seen: dict[str, None] = {}
    for doc in documents:
        for name in fields:
            value = doc.get(name)
            if isinstance(value, str):
                for word in _WORD.findall(value.lower()):
                    seen.setdefault(word, None)
    return list(seen)


def query_mix(
    words: Sequence[str],
    facets: dict[str, Sequence[str]],
    sorts: Sequence[str],
    count: int = 400,
    seed: int = SEED,
) -> list[Query]:
    """`count` queries in the proportions of `KINDS`, drawn with `seed`: the same inputs give
    the same mix."""
    if not words:
        raise ValueError("no words to search for: is the index empty?")
    rng = random.Random(seed)
    kinds = [kind for kind, weight in KINDS.items() for _ in range(weight)]
    filters = [(name, value) for name, values in facets.items() for value in values]
    out = []
    for _ in range(count):
        kind = rng.choice(kinds)
        q = " ".join(rng.sample(list(words), k=min(len(words), rng.choice((1, 1, 2)))))
        params: list[tuple[str, str]] = []
        if kind == "suggest":
            word = rng.choice(words)
            prefix = word[: rng.randint(2, min(5, len(word)))]
            out.append(Query(kind, "suggestions", (("prefix", prefix), ("size", "5"))))
            continue
        if kind != "filter + sort":
            params.append(("q", q))
        if kind in ("words + filter", "filter + sort") and filters:
            name, value = rng.choice(filters)
            params.append(("filter", f"{name}={value}"))
        if kind in ("filter + sort", "words + sort, page 2-3") and sorts:
            params.append(("sort", f"{rng.choice(sorts)}:{rng.choice(('asc', 'desc'))}"))
        if kind == "words + sort, page 2-3":
            params.append(("page", str(rng.randint(2, 3))))
        params.append(("size", "10"))
        out.append(Query(kind, "search", tuple(params)))
    return out


def es_request(query: Query, declaration: IndexDeclaration, max_size: int) -> tuple[str, bytes]:
    """The query string and body the API sends Elasticsearch for `query`."""
    params = dict(query.params)
    if query.route == "suggestions":
        body = suggest_body(declaration, params["prefix"], int(params["size"]))
        filter_path = SUGGEST_FILTER_PATH
    else:
        body = search_body(
            declaration,
            params.get("q", ""),
            [v for k, v in query.params if k == "filter"],
            int(params.get("page", "1")),
            int(params.get("size", "10")),
            max_size,
            params.get("sort", ""),
        )
        filter_path = SEARCH_FILTER_PATH
    return urlencode({"filter_path": filter_path}), orjson.dumps(body)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (nearest rank) of `values`; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(latencies_s: Sequence[float], errors: int, duration_s: float) -> dict[str, Any]:
    ms = [s * 1000 for s in latencies_s]
    return {
        "requests": len(ms),
        "errors": errors,
        "rps": round(len(ms) / duration_s, 1) if duration_s > 0 else 0.0,
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
    }


def goal(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Whether the step at `GOAL_CLIENTS` clients met the goal (p95 and share of ES)."""
    step = next((s for s in steps if s["clients"] == GOAL_CLIENTS), None)
    if step is None:
        return {"clients": GOAL_CLIENTS, "measured": False}
    p95, ratio = step["api"]["p95_ms"], step["ratio"]
    return {
        "clients": GOAL_CLIENTS,
        "measured": True,
        "p95_ms": p95,
        "p95_goal_ms": GOAL_P95_MS,
        "ratio": ratio,
        "ratio_goal": GOAL_RATIO,
        "met": p95 <= GOAL_P95_MS and ratio >= GOAL_RATIO,
    }


def report_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per step, as `COLUMNS` names them."""
    rows = []
    for s in result["steps"]:
        api, es, cores = s["api"], s["elasticsearch"], s["cores"]
        rows.append(
            [
                str(s["clients"]),
                f"{api['rps']:,.0f}",
                f"{api['p50_ms']:.1f} / {api['p95_ms']:.1f} / {api['p99_ms']:.1f}",
                f"{es['rps']:,.0f}",
                f"{es['p50_ms']:.1f} / {es['p95_ms']:.1f} / {es['p99_ms']:.1f}",
                f"{s['ratio']:.0%}",
                f"{cores.get('api', 0):.2f} / {cores.get('elasticsearch', 0):.2f} / "
                f"{cores.get('bench client', 0):.2f}",
                str(api["errors"] + es["errors"]),
            ]
        )
    return rows


COLUMNS = [
    "clients",
    "API req/s",
    "API p50 / p95 / p99 ms",
    "ES req/s",
    "ES p50 / p95 / p99 ms",
    "API/ES",
    "cores API / ES / client",
    "errors",
]


# -- I/O --------------------------------------------------------------------------------------


# The bench's own key's limit: far above what one machine sends, so the limit is checked on
# every request (its cost measured) and never refuses one.
UNREACHED_RATE_PER_MIN = 100_000_000


@dataclass(frozen=True)
class Target:
    """Where requests go: each is (method, url, body or None)."""

    name: str
    requests: list[tuple[str, str, bytes | None]]
    headers: dict[str, str]


async def _drive(
    target: Target, clients: int, warmup_s: float, duration_s: float, client_options: dict
) -> dict[str, Any]:
    """`clients` loops, each sending the target's requests in turn, one at a time; what
    completed within the measured window."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    measure_from = started + warmup_s
    stop_at = measure_from + duration_s
    position = iter(range(10**12))
    requests = target.requests
    connector = aiohttp.TCPConnector(limit=clients, ssl=client_options.get("ssl", True))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auth=client_options.get("auth")
    ) as session:

        async def client() -> None:
            nonlocal errors
            while True:
                method, url, body = requests[next(position) % len(requests)]
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                try:
                    async with session.request(
                        method, url, data=body, headers=target.headers
                    ) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                done = time.perf_counter()
                if sent >= measure_from and done <= stop_at:
                    if ok:
                        latencies.append(done - sent)
                    else:
                        errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return summarise(latencies, errors, duration_s)


def drive(
    target: Target, clients: int, warmup_s: float, duration_s: float, client_options: dict
) -> dict[str, Any]:
    import uvloop

    return uvloop.run(_drive(target, clients, warmup_s, duration_s, client_options))


def _sample(settings: Settings, alias: str, declaration: IndexDeclaration) -> dict[str, Any]:
    """Documents of the index (a seeded random sample), its facets' values, its doc count."""
    from indexers.catalog import client

    es = client(settings.elasticsearch, timeout_s=60)
    spec = searchable(declaration)
    fields = [f.split("^")[0] for f in spec.fields] or list(spec.suggest)
    response = es.search(
        index=alias,
        size=300,
        query={
            "function_score": {
                "query": {"match_all": {}},
                "random_score": {"seed": SEED, "field": "_seq_no"},
            }
        },
        source={"includes": fields},
        aggs={name: {"terms": {"field": path, "size": 10}} for name, path in spec.facets.items()},
        track_total_hits=True,
    ).body
    return {
        "documents": [h["_source"] for h in response["hits"]["hits"]],
        "total": response["hits"]["total"]["value"],
        "fields": fields,
        "facets": {
            name: [str(b["key"]) for b in agg["buckets"]]
            for name, agg in response.get("aggregations", {}).items()
        },
    }


def _es_client_options(settings: Settings) -> dict[str, Any]:
    import ssl

    import aiohttp

    es = settings.elasticsearch
    options: dict[str, Any] = {}
    auth = es.basic_auth()
    if auth is not None:
        options["auth"] = aiohttp.BasicAuth(*auth)
    if es.ca_certs is not None:
        options["ssl"] = ssl.create_default_context(cafile=str(es.ca_certs))
    return options


def run(
    settings: Settings,
    index: str,
    steps: Sequence[int],
    duration_s: float,
    warmup_s: float,
    processes: int,
    api_url: str | None,
    bench_dir: Path,
    progress: Progress,
    profile: bool = False,
    api_key: str | None = None,
) -> dict[str, Any]:
    """The benchmark; its result as a JSON-ready dict. The API is called with a key, as
    clients call it: `api_key` for the API at `api_url`; for the API it starts, a key of its
    own (scope search), revoked at the end, whose rate limit is set out of reach so that the
    checks cost what they cost and never refuse."""
    from api.settings import ApiSettings
    from connectors.sources import resolve
    from headwater.stack.manager import Stack
    from indexers.declared import declared_indexes
    from streams.profile import CpuMeter, Profiler, by_function

    pipelines, bindings = resolve(settings)
    indexes = declared_indexes(pipelines, bindings, settings.indexes.prefix)
    if index not in indexes:
        raise ValueError(f"no declared index {index!r}; known: {', '.join(sorted(indexes))}")
    declared = indexes[index]
    declaration = declared.shaper.declaration
    max_size = ApiSettings().max_size
    progress(f"sampling {declared.alias} for the query mix ...")
    sample = _sample(settings, declared.alias, declaration)
    sorts = sorted(sortable(declaration))
    mix = query_mix(words_of(sample["documents"], sample["fields"]), sample["facets"], sorts)
    es_url = settings.elasticsearch.url.rstrip("/")
    es_requests: list[tuple[str, str, bytes | None]] = []
    for query in mix:
        params, body = es_request(query, declaration, max_size)
        url = f"{es_url}/{declared.alias}/_search" + (f"?{params}" if params else "")
        es_requests.append(("POST", url, body))
    es_options = _es_client_options(settings)
    stack = Stack(settings)
    es_pid = stack.managed_pid("elasticsearch")

    def measure(api_base: str, api_pid: int | None, key: str | None) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        api = Target("api", [("GET", api_base + q.path(index), None) for q in mix], headers)
        es = Target("elasticsearch", es_requests, {"Content-Type": "application/json"})
        pids = {"bench client": os.getpid()}
        if es_pid is not None:
            pids["elasticsearch"] = es_pid
        if api_pid is not None:
            pids["api"] = api_pid
        out = []
        for clients in steps:
            progress(f"{clients} client(s): Elasticsearch directly ...")
            es_meter = CpuMeter(pids)
            es_meter.start()
            direct = drive(es, clients, warmup_s, duration_s, es_options)
            es_cores = es_meter.stop()
            progress(f"{clients} client(s): through the API ...")
            meter = CpuMeter(pids)
            profiler = None
            if profile and api_pid is not None and clients == GOAL_CLIENTS:
                profiler = Profiler(api_pid, bench_dir / "search-profile.txt", duration_s)
            meter.start()
            if profiler is not None:
                profiler.start()
            through = drive(api, clients, warmup_s, duration_s, {})
            cores = meter.stop()
            ratio = round(through["rps"] / direct["rps"], 3) if direct["rps"] else 0.0
            progress(
                f"  API {through['rps']:,.0f}/s p95 {through['p95_ms']:.1f} ms; "
                f"ES {direct['rps']:,.0f}/s p95 {direct['p95_ms']:.1f} ms; ratio {ratio:.0%}"
            )
            step: dict[str, Any] = {
                "clients": clients,
                "api": through,
                "elasticsearch": direct,
                "ratio": ratio,
                "cores": cores,
                "cores_elasticsearch_step": es_cores,
            }
            if profiler is not None:
                step["profile_top"] = by_function(profiler.samples(), top=15)
            out.append(step)
        return out

    if api_url is not None:
        progress(f"benchmarking the API at {api_url}")
        measured = measure(api_url.rstrip("/"), None, api_key)
    else:
        log = bench_dir / "search-api.log"
        keys = direct_store(settings.postgres)
        key, token = keys.create("bench-search", ["search"])
        env = {"HW_API_KEY_RATE_PER_MIN": str(UNREACHED_RATE_PER_MIN)}
        try:
            with ServedApi(log, processes, env) as server:
                progress(f"API started at {server.url} ({processes} process(es)); log {log}")
                assert server.proc is not None
                time.sleep(2)  # its dashboards feed reads the updates topic at start
                measured = measure(server.url, server.proc.pid, token)
        finally:
            keys.revoke(key.id)
    return {
        "index": index,
        "alias": declared.alias,
        "documents": sample["total"],
        "queries": len(mix),
        "mix": dict(sorted({k: sum(q.kind == k for q in mix) for k in KINDS}.items())),
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "api": api_url or f"python -m api.serve --processes {processes}",
        "processes": None if api_url else processes,
        "cpus": os.cpu_count(),
        "steps": measured,
        "goal": goal(measured),
    }
