"""Dead letters, pure: their current state, selecting them, and the redrive marks.

No Kafka and no Faust here. A dead-letter topic holds every letter ever sent for its source
topic; a record that failed again on a redrive adds a letter with one more attempt, so the
current state of one record failing for one consumer (`DeadLetter.ident`) is its letters merged
(`current`): the newest error and stage, the most attempts, the first `first_seen` and the last
`last_seen`. A worker records each redrive it handled as a `Mark` in a compacted table keyed by
`mark_key`: a letter whose mark says `redriven` is done, and redriving it again does nothing.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from headwater.resilience import DeadLetter

REDRIVEN: Final = "redriven"  # written by its consumer: done
FAILED: Final = "failed"  # failed again: a letter with one more attempt was sent
UNKNOWN: Final = "unknown"  # the worker has no consumer of that name (no longer declared)
Outcome = Literal["redriven", "failed", "unknown"]

OPEN: Final = "open"
Status = Literal["open", "redriven"]


def mark_key(letter: DeadLetter) -> str:
    """The key of a letter's mark in its app's table of redriven letters."""
    return f"{letter.consumer}|{letter.source_topic}|{letter.partition}|{letter.offset}"


@dataclass(frozen=True)
class Mark:
    """What a worker did with a redriven letter, the last time one was redriven to it."""

    outcome: Outcome
    attempts: int  # of the letter redriven
    at: datetime
    request: str = ""  # the redrive request that asked for it
    repeat: bool = False  # asked again after it had been redriven: nothing was done

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "attempts": self.attempts,
            "at": self.at.isoformat(),
            "request": self.request,
            "repeat": self.repeat,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mark:
        return cls(
            outcome=_outcome(data["outcome"]),
            attempts=int(data["attempts"]),
            at=datetime.fromisoformat(data["at"]),
            request=str(data.get("request", "")),
            repeat=bool(data.get("repeat", False)),
        )


def repeated(previous: Mark | None, request: str) -> Mark | None:
    """The mark to write instead of handing a letter to its consumer, if it was redriven
    already (None: hand it over). The mark keeps when it was done and notes the repeated
    request, so the one who asked learns it was a no-op."""
    if previous is not None and previous.outcome == REDRIVEN:
        return Mark(REDRIVEN, previous.attempts, previous.at, request, repeat=True)
    return None


_OUTCOMES: dict[str, Outcome] = {REDRIVEN: REDRIVEN, FAILED: FAILED, UNKNOWN: UNKNOWN}


def _outcome(raw: Any) -> Outcome:
    try:
        return _OUTCOMES[raw]
    except KeyError:
        raise ValueError(f"not an outcome: {raw!r}") from None


def current(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """One letter per identity: the newest error and stage, the most attempts, the first
    `first_seen` and the last `last_seen`; oldest first."""
    merged: dict[tuple[str, str, str, int, int], DeadLetter] = {}
    for letter in letters:
        kept = merged.get(letter.ident)
        if kept is None:
            merged[letter.ident] = letter
            continue
        newer, older = (
            (letter, kept)
            if (letter.attempts, letter.last_seen) >= (kept.attempts, kept.last_seen)
            else (kept, letter)
        )
        merged[letter.ident] = newer.model_copy(
            update={
                "attempts": max(newer.attempts, older.attempts),
                "first_seen": min(newer.first_seen, older.first_seen),
                "last_seen": max(newer.last_seen, older.last_seen),
            }
        )
    return sorted(merged.values(), key=lambda x: (x.first_seen, x.where, x.consumer))


def status(letter: DeadLetter, marks: Mapping[str, Mark]) -> Status:
    """Redriven once its consumer wrote it and it has not failed since."""
    mark = marks.get(mark_key(letter))
    if mark is not None and mark.outcome == REDRIVEN and mark.attempts >= letter.attempts:
        return REDRIVEN
    return OPEN


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from `now` (`90s`, `15m`, `2h`, `1d`, `1h30m`) or a
    timestamp (ISO 8601; UTC when it names no zone)."""
    raw = text.strip().lower()
    if raw and _DURATION.sub("", raw) == "":
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(raw))
        return now - timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give a duration (30m, 2h, 1d, 1h30m) or a timestamp "
            "(2024-05-01T12:00, 2024-05-01 12:00:00+02:00)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def key_matches(key: str | None, wanted: str) -> bool:
    """`--key`: the record's key as it is (`{"id":42}`), or its values (`42`; `7,42` for a key
    of several columns)."""
    if key is None:
        return False
    if key == wanted:
        return True
    try:
        data = json.loads(key)
    except ValueError:
        return False
    if isinstance(data, dict) and data:
        return ",".join(str(v) for v in data.values()) == wanted.replace(" ", "")
    return False


@dataclass(frozen=True)
class Selection:
    """Which letters a `dlq` command is about; a field left None does not filter."""

    app: str | None = None
    since: datetime | None = None
    key: str | None = None
    consumer: str | None = None  # a name, or a pattern (`search:*`)
    statuses: frozenset[str] = frozenset({OPEN, REDRIVEN})

    def matches(self, letter: DeadLetter, marks: Mapping[str, Mark]) -> bool:
        if self.app is not None and letter.app not in (self.app, ""):
            return False
        if self.since is not None and letter.last_seen < self.since:
            return False
        if self.key is not None and not key_matches(letter.key, self.key):
            return False
        if self.consumer is not None and not fnmatch.fnmatchcase(letter.consumer, self.consumer):
            return False
        return status(letter, marks) in self.statuses


def select(
    letters: Iterable[DeadLetter], marks: Mapping[str, Mark], selection: Selection
) -> list[DeadLetter]:
    """The current letters `selection` picks, oldest first."""
    return [x for x in current(letters) if selection.matches(x, marks)]


def redrivable(letter: DeadLetter) -> bool:
    """Only a letter naming its app and consumer can be handed back to that consumer."""
    return bool(letter.app and letter.consumer)


def counts(letters: Iterable[DeadLetter], marks: Mapping[str, Mark]) -> dict[str, Counter[str]]:
    """Letters per consumer, by status."""
    out: dict[str, Counter[str]] = {}
    for letter in letters:
        out.setdefault(letter.consumer or "-", Counter())[status(letter, marks)] += 1
    return out


def find(letters: Iterable[DeadLetter], prefix: str) -> list[DeadLetter]:
    """The current letters whose id starts with `prefix`."""
    return [x for x in current(letters) if x.id.startswith(prefix.strip().lower())]


def short_error(error: str, width: int = 60) -> str:
    line = " ".join(error.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def pretty_value(value: str | None) -> str:
    """A letter's value for reading: indented JSON when it is JSON, as it is otherwise."""
    if value is None:
        return "(none: a tombstone)"
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:
        return value


@dataclass(frozen=True)
class Request:
    """One letter asked to be redriven: what a worker reads from its redrive topic."""

    letter: DeadLetter
    request: str

    def to_json(self) -> bytes:
        return json.dumps(
            {"letter": json.loads(self.letter.to_json()), "request": self.request}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Request:
        data = json.loads(raw)
        return cls(DeadLetter.model_validate(data["letter"]), str(data["request"]))


@dataclass
class Progress:
    """What has become of the letters one redrive asked for, from the marks it got back."""

    asked: dict[str, DeadLetter]  # mark key -> letter
    request: str
    outcomes: dict[str, Mark]

    @classmethod
    def of(cls, letters: Iterable[DeadLetter], request: str) -> Progress:
        return cls({mark_key(x): x for x in letters}, request, {})

    def note(self, key: str, mark: Mark) -> bool:
        """Take a mark read back; True if it answers this request for the first time."""
        if mark.request != self.request or key not in self.asked or key in self.outcomes:
            return False
        self.outcomes[key] = mark
        return True

    @property
    def done(self) -> bool:
        return len(self.outcomes) == len(self.asked)

    def summary(self) -> dict[str, int]:
        tally = Counter("already" if m.repeat else m.outcome for m in self.outcomes.values())
        return {
            "asked": len(self.asked),
            "redriven": tally[REDRIVEN],
            "failed": tally[FAILED],
            "already": tally["already"],
            "unknown": tally[UNKNOWN],
            "pending": len(self.asked) - len(self.outcomes),
        }


def redrive_topic(app_id: str) -> str:
    """The topic an app's workers read redrive requests from (one per app)."""
    return f"{app_id}-dlq-redrive"


MARKS_TABLE = "dlq-redriven"


def marks_topic(app_id: str) -> str:
    """The compacted changelog of an app's table of marks (Faust's name for it)."""
    return f"{app_id}-{MARKS_TABLE}-changelog"
