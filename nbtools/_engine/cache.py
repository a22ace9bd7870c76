"""An on-disk cache of replies, so a re-run cell (or an interrupted batch run again) sends only
what it has not got yet.

SQLite in the user's cache directory. The key is a hash of what determines a reply: the
endpoint URL, the model, the messages and every request parameter, and which sample of that
request it is: the k-th identical request in a batch (a repeated prompt, or ``repeat=10``) has a
key of its own, so ten identical prompts are ten samples, and a re-run gets the same ten back.
The API key is never part of the key nor stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtools._engine.private import connect, nbtools_folder, private_database
from nbtools._engine.replies import Completion

if TYPE_CHECKING:
    from nbtools._engine.endpoints import Endpoint

_IGNORED = ("stream", "stream_options")  # how a reply travels, not what it says
_ADDED_COLUMNS = (("cached_tokens", "INTEGER"), ("system_fingerprint", "TEXT"), ("request_id", "TEXT"))  # since v1
_COLUMNS = "key, model, text, prompt_tokens, completion_tokens, finish_reason, created, cached_tokens, " \
           "system_fingerprint, request_id"
COMMIT_EVERY = 0.5  # seconds: finished rows reach the disk soon enough to survive a crash


_OFF = ("0", "off", "false", "no")
_ON = ("", "1", "on", "true", "yes")  # on, at the default path


def enabled_by_default() -> bool:
    """``NBTOOLS_CACHE=off`` turns the cache off unless a batch asks for it."""
    return os.environ.get("NBTOOLS_CACHE", "").lower() not in _OFF


def cache_is_on(choice: bool | None, endpoint: Endpoint) -> bool:
    """The ``cache=`` option if set, else on, except on the simulator (its replies cost nothing) or
    when ``NBTOOLS_CACHE=off``."""
    return choice if choice is not None else (not endpoint.simulated and enabled_by_default())


def default_path() -> Path:
    """``$NBTOOLS_CACHE`` if it names a file, else replies.sqlite in the user's cache directory."""
    override = os.environ.get("NBTOOLS_CACHE", "")
    if override.lower() not in _OFF + _ON:
        return Path(override)
    return nbtools_folder() / "replies.sqlite"


def request_digest(base_url: str, body: dict[str, Any]) -> str:
    """A hash of what determines a reply; ``f"{digest}:{k}"`` keys its k-th sample."""
    content = {k: v for k, v in body.items() if k not in _IGNORED}
    blob = json.dumps([base_url, content], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class SampleKeys:
    """Cache keys for one batch's requests, in order: the k-th identical request is sample k.

    With ``dedupe``, identical prompts share a key (and so one request), while ``repeat`` copies stay
    samples of their own.
    """

    def __init__(self, base_url: str, repeat: int, dedupe: bool) -> None:
        self.base_url, self.repeat, self.dedupe = base_url, repeat, dedupe
        self._seen: dict[str, int] = {}

    def key(self, index: int, body: dict[str, Any]) -> str:
        digest = request_digest(self.base_url, body)
        if self.dedupe:
            return f"{digest}:{index % self.repeat}"
        sample = self._seen.get(digest, 0)
        self._seen[digest] = sample + 1
        return f"{digest}:{sample}"


def in_own_folder() -> bool:
    """Do the default files live in nbtools' own folder (not one chosen through ``$NBTOOLS_CACHE``)?"""
    return os.environ.get("NBTOOLS_CACHE", "").lower() in _OFF + _ON


class ReplyCache:
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        private_database(self.path, own_folder=path is None and in_own_folder())
        self._db = connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, text TEXT, "
            "prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT, created REAL, cached_tokens INTEGER, "
            "system_fingerprint TEXT, request_id TEXT)"
        )
        have = {row[1] for row in self._db.execute("PRAGMA table_info(replies)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in have:  # a cache from before
                self._db.execute(f"ALTER TABLE replies ADD COLUMN {name} {kind}")
        self._pending: list[tuple[Any, ...]] = []
        self._last_commit = time.monotonic()

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):  # SQLite caps the number of bound parameters
            chunk = unique[i : i + 500]
            rows = self._db.execute(
                "SELECT key, text, model, prompt_tokens, completion_tokens, finish_reason, cached_tokens, "
                "system_fingerprint, request_id FROM replies "
                f"WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, text, model, ptok, ctok, finish, cached, fingerprint, request_id in rows:
                found[key] = Completion(text, model, ptok, ctok, finish, cached, system_fingerprint=fingerprint,
                                        request_id=request_id)
        return found

    def put(self, key: str, completion: Completion) -> None:
        self._pending.append((key, completion.model, completion.text, completion.prompt_tokens,
                              completion.completion_tokens, completion.finish_reason, time.time(),
                              completion.cached_tokens, completion.system_fingerprint, completion.request_id))
        if time.monotonic() - self._last_commit >= COMMIT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            self._db.executemany(f"INSERT OR REPLACE INTO replies ({_COLUMNS}) VALUES ({', '.join('?' * 10)})",
                                 self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None  # type: ignore[assignment]
