import os

from streams.profile import OTHER, by_function, by_stage, parse_collapsed, stage_of, tree_cpu_s

RAW = [
    "<module> (streams/worker.py:87);run (asyncio/base_events.py:600);"
    "index_records (streams/search/agents.py:120);decode_records (streams/common.py:90);"
    "decode_change (headwater/models/cdc.py:70);loads (json/__init__.py:3) 30\n",
    "<module> (streams/worker.py:87);index_records (streams/search/agents.py:130);"
    "plan (streams/search/logic.py:70);shape (indexers/documents.py:200) 50\n",
    "<module> (streams/worker.py:87);_run_once (asyncio/base_events.py:1900) 15\n",
    "<module> (streams/worker.py:87);bulk (elasticsearch/_async/client/__init__.py:700);"
    "perform_request (elastic_transport/_async_transport.py:300) 5\n",
    "garbage line without a count\n",
    "\n",
]


def test_collapsed_stacks_are_read_outermost_first_with_their_counts() -> None:
    samples = parse_collapsed(RAW)
    assert [n for _, n in samples] == [30, 50, 15, 5]
    assert samples[0][0][0] == "<module> (streams/worker.py:87)"
    assert samples[0][0][-1] == "loads (json/__init__.py:3)"


def test_a_sample_counts_for_the_innermost_frame_that_names_a_stage() -> None:
    samples = parse_collapsed(RAW)
    assert [stage_of(stack) for stack, _ in samples] == [
        "decode change events",  # json's loads is in no stage; decode_change is
        "plan and shape documents",
        "HTTP and event loop",
        "Elasticsearch client",
    ]
    assert stage_of(["main (app.py:1)"]) == OTHER


def test_shares_by_stage_and_by_function_add_up() -> None:
    samples = parse_collapsed(RAW)
    stages = dict(by_stage(samples))
    assert stages["plan and shape documents"] == 0.5
    assert abs(sum(stages.values()) - 1.0) < 1e-9
    functions = by_function(samples, top=2)
    assert functions == [("shape (indexers/documents.py:200)", 0.5),
                         ("loads (json/__init__.py:3)", 0.3)]  # fmt: skip


def test_cpu_of_a_process_tree_grows_with_work() -> None:
    before = tree_cpu_s(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert tree_cpu_s(os.getpid()) > before
