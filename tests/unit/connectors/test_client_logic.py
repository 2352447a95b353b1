from connectors.client import is_running, last_error, summary, validation_errors


def test_validation_errors_name_each_bad_field() -> None:
    answer = {
        "configs": [
            {"value": {"name": "database.port", "errors": ["Invalid value abc"]}},
            {"value": {"name": "topic.prefix", "errors": []}},
        ]
    }
    errors = validation_errors(answer)
    assert [(e.field, e.messages) for e in errors] == [("database.port", ["Invalid value abc"])]


def test_running_needs_connector_and_every_task() -> None:
    running = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}
    assert is_running(running)
    assert not is_running({"connector": {"state": "RUNNING"}, "tasks": []})
    assert not is_running(
        {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "FAILED"}]}
    )


def test_last_error_is_the_first_trace_line_of_a_failed_task() -> None:
    status = {
        "connector": {"state": "RUNNING"},
        "tasks": [{"id": 0, "state": "FAILED", "trace": "org.X: boom\n\tat a.b"}],
    }
    assert last_error(status) == "org.X: boom"
    assert "0:FAILED" in summary(status)


def test_a_connector_that_lost_its_place_in_the_wal_is_told_apart() -> None:
    from connectors.client import last_error, lost_its_place

    trace = (
        "io.debezium.DebeziumException: The connector is trying to read change stream starting "
        "at PostgresOffsetContext [...], but this is no longer available on the server. "
        "Reconfigure the connector to use a snapshot when needed.\n\tat io.debezium..."
    )
    status = {
        "connector": {"state": "RUNNING"},
        "tasks": [{"id": 0, "state": "FAILED", "trace": trace}],
    }
    assert lost_its_place(last_error(status))
    assert not lost_its_place("org.apache.kafka.connect.errors.ConnectException: timeout")
    assert not lost_its_place(None)
