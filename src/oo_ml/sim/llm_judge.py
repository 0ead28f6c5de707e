"""The ``llm`` judge: asks any OpenAI-compatible chat-completions endpoint what the person does.

Also home of what the ``llm`` and ``command`` judges share: the strict reply parser
(:func:`parse_judgement`), the counters (:class:`JudgeStats`) and the retry loop.

A reply is one JSON object, optionally inside a single ```` ```json ```` fence, and nothing else::

    {"action": "done" | "snooze" | "dismiss", "dwell_seconds": <0 … 21600 if done, else null>}

— except that a leading ``<think>…</think>`` block, which local reasoning models (served by
llama.cpp, Ollama, LM Studio, vLLM) put before their answer, is set aside unread.

**JSON mode.** The judge asks for ``response_format: {"type": "json_object"}``. A server that
refuses that field with a 400 naming it (LM Studio accepts only ``json_schema``, some proxies
no ``response_format`` at all) is asked again at once without it, and so is every later
request to that judge; :attr:`LLMJudge.json_mode` then reads ``False``.

**Retries.** Timeouts, connection errors, 408, 429 and 5xx answers, and replies that fail
validation are retried up to ``retries`` more times, waiting ``backoff_s · 2^i`` (or the
server's ``Retry-After``, capped at 30 s) before retry ``i``. After an invalid reply the next
attempt shows the model its reply and why it was refused. Other 4xx answers (bad key, unknown
model, wrong URL) raise :class:`~oo_ml.errors.ConfigurationError` at once: every later call
would fail the same way.

**When every attempt fails** the person is taken to have *dismissed* the tip
(:data:`FALLBACK`), ``stats.failures`` counts it, and nothing is cached — so one bad reply does
not end a simulation run, the counts show how many steps were not judged, and a rerun asks
again. ``max_consecutive_failures`` failures in a row raise :class:`JudgeError` instead: by
then the endpoint is down or the model cannot follow the format, and the run would be noise.

**Cache.** With ``cache_dir``, each validated judgement is kept in its own file
``<cache_dir>/<sha256>.json``, holding the canonical reply (``{"action": …, "dwell_seconds":
…}``) and written atomically (temporary file + :func:`os.replace`). The key hashes the base URL,
model, temperature and messages, so changing any of them asks again. A file that does not parse
is ignored and overwritten. Replayed from the cache, a run is deterministic and free.

**Randomness.** The ``rng`` argument of :meth:`LLMJudge.judge` is unused: determinism comes from
``temperature=0`` and the cache, not from the simulator's generator.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np

from oo_ml.errors import ConfigurationError, OOMLError, ValidationError
from oo_ml.sim.judges import Judgement, JudgeRequest
from oo_ml.types import Action

__all__ = [
    "FALLBACK",
    "MAX_DWELL_SECONDS",
    "SYSTEM_PROMPT",
    "JudgeError",
    "JudgeStats",
    "LLMJudge",
    "backoff_delay",
    "format_judgement",
    "parse_judgement",
]

log = logging.getLogger(__name__)

MAX_DWELL_SECONDS = 6 * 3600.0
"""Longest dwell a judge may report, in seconds (the persona model's cap too)."""

MAX_BACKOFF_SECONDS = 30.0
"""Longest wait before a retry, whatever the backoff or ``Retry-After`` says."""

MAX_REPLY_CHARS = 65_536
"""Longer replies are refused unread: a judgement is a few dozen characters."""

FALLBACK = Judgement(Action.DISMISS, None)
"""What a judge answers when every attempt failed (counted in ``stats.failures``)."""

SYSTEM_PROMPT = (
    "You simulate how one person reacts to a task suggested by their productivity app. "
    "Stay in character. Reply with a single JSON object and nothing else: "
    '{"action": "done" | "snooze" | "dismiss", "dwell_seconds": <number of seconds spent on the '
    'task if "done", otherwise null>}.'
)

_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n(.*?)\n?[ \t]*```", re.S)
_THINKING = re.compile(r"<think>.*?</think>", re.S)
_RETRYABLE_STATUS = frozenset({408, 429})


class JudgeError(OOMLError):
    """A judge failed too many judgements in a row for its answers to mean anything."""


@dataclass(slots=True)
class JudgeStats:
    """What a judge has done so far.

    ``calls`` counts :meth:`judge` calls, ``cache_hits`` those answered from the cache,
    ``retries`` the extra attempts, ``invalid_replies`` the replies refused by the parser and
    ``failures`` the calls answered with :data:`FALLBACK`. Attempts sent to the endpoint or
    program = ``calls − cache_hits + retries``.
    """

    calls: int = 0
    cache_hits: int = 0
    invalid_replies: int = 0
    retries: int = 0
    failures: int = 0


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_judgement(text: str) -> Judgement:
    """The judgement in a reply, or a :class:`~oo_ml.errors.ValidationError` saying what is wrong.

    >>> parse_judgement('```json\\n{"action": "done", "dwell_seconds": 45}\\n```')
    Judgement(action=<Action.DONE: 'done'>, dwell_ms=45000)
    >>> parse_judgement('<think>Low priority; skip.</think>\\n{"action": "dismiss"}')
    Judgement(action=<Action.DISMISS: 'dismiss'>, dwell_ms=None)
    >>> parse_judgement('Sure! {"action": "dismiss"}')
    Traceback (most recent call last):
    ...
    oo_ml.errors.ValidationError: reply: is not JSON (Expecting value: line 1 column 1 (char 0))
    """
    if len(text) > MAX_REPLY_CHARS:
        raise ValidationError("reply", f"is longer than {MAX_REPLY_CHARS} characters")
    body = text.strip()
    thinking = _THINKING.match(body)
    if thinking is not None:
        body = body[thinking.end() :].strip()
    if not body:
        raise ValidationError("reply", "is empty")
    fenced = _FENCE.fullmatch(body)
    if fenced is not None:
        body = fenced.group(1).strip()
    try:
        data = json.loads(body, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise ValidationError("reply", f"is not JSON ({_short(str(exc))})") from None
    if not isinstance(data, dict):
        raise ValidationError("reply", f"must be a JSON object, got {type(data).__name__}")
    extra = set(data) - {"action", "dwell_seconds"}
    if extra:
        raise ValidationError("reply", f"unexpected keys {sorted(extra)}")
    raw_action = data.get("action")
    allowed = ", ".join(a.value for a in Action)
    if not isinstance(raw_action, str) or raw_action not in {a.value for a in Action}:
        raise ValidationError("action", f"must be one of {allowed}, got {raw_action!r}")
    action = Action(raw_action)
    dwell = data.get("dwell_seconds")
    if action is not Action.DONE:
        if dwell is not None:
            raise ValidationError("dwell_seconds", f"must be null for {action.value}")
        return Judgement(action, None)
    return Judgement(action, None if dwell is None else _dwell_ms(dwell))


def _dwell_ms(dwell: object) -> int:
    if isinstance(dwell, bool) or not isinstance(dwell, int | float):
        raise ValidationError("dwell_seconds", f"must be a number, got {type(dwell).__name__}")
    try:
        seconds = float(dwell)
    except OverflowError:  # an integer with hundreds of digits
        seconds = math.inf
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DWELL_SECONDS:
        raise ValidationError(
            "dwell_seconds", f"must be between 0 and {MAX_DWELL_SECONDS:g}, got {dwell!r}"
        )
    return round(seconds * 1000)


def format_judgement(judgement: Judgement) -> str:
    """The canonical reply for ``judgement``; :func:`parse_judgement` reads it back unchanged."""
    dwell = None if judgement.dwell_ms is None else judgement.dwell_ms / 1000
    return json.dumps({"action": judgement.action.value, "dwell_seconds": dwell})


def backoff_delay(retry: int, backoff_s: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0-based).

    >>> [backoff_delay(i, 0.5) for i in range(4)]
    [0.5, 1.0, 2.0, 4.0]
    >>> backoff_delay(0, 0.5, retry_after=3.0), backoff_delay(10, 0.5)
    (3.0, 30.0)
    """
    delay = max(backoff_s * 2.0**retry, retry_after or 0.0)
    return min(delay, MAX_BACKOFF_SECONDS)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _AttemptError(Exception):
    """One attempt got no reply (timeout, connection, 5xx, exit code); worth retrying."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _RetryingJudge:
    """The retry loop, counters and fallback the ``llm`` and ``command`` judges share.

    Subclasses implement :meth:`_ask` (one attempt: the raw reply, or :class:`_AttemptError`)
    and may implement :meth:`_recall` / :meth:`_remember` to cache validated judgements.
    Counters are updated under a lock, so one judge can serve several threads.
    """

    name: str

    def __init__(self, *, retries: int, backoff_s: float, max_consecutive_failures: int) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
            raise ConfigurationError(f"retries must be an integer in [0, 20], got {retries!r}")
        if not math.isfinite(backoff_s) or not 0 <= backoff_s <= MAX_BACKOFF_SECONDS:
            raise ConfigurationError(
                f"backoff_s must be in [0, {MAX_BACKOFF_SECONDS:g}], got {backoff_s!r}"
            )
        if max_consecutive_failures < 1:
            raise ConfigurationError(
                f"max_consecutive_failures must be ≥ 1, got {max_consecutive_failures!r}"
            )
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_consecutive_failures = max_consecutive_failures
        self.stats = JudgeStats()
        self._lock = threading.Lock()
        self._consecutive_failures = 0

    def judge(self, request: JudgeRequest, rng: np.random.Generator) -> Judgement:
        """What the person does; ``rng`` is unused (see the module docstring)."""
        with self._lock:
            self.stats.calls += 1
        cached = self._recall(request)
        if cached is not None:
            with self._lock:
                self.stats.cache_hits += 1
            return cached
        previous: tuple[str, str] | None = None
        retry_after: float | None = None
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt > 0:
                with self._lock:
                    self.stats.retries += 1
                time.sleep(backoff_delay(attempt - 1, self.backoff_s, retry_after))
            retry_after = None
            try:
                text = self._ask(request, previous)
            except _AttemptError as exc:
                last_error, retry_after = str(exc), exc.retry_after
                log.warning("%s judge attempt %d failed: %s", self.name, attempt + 1, exc)
                continue
            try:
                judgement = parse_judgement(text)
            except ValidationError as exc:
                with self._lock:
                    self.stats.invalid_replies += 1
                last_error = f"invalid reply: {exc}"
                previous = (text, str(exc))
                log.warning("%s judge attempt %d: %s", self.name, attempt + 1, last_error)
                continue
            with self._lock:
                self._consecutive_failures = 0
            self._remember(request, judgement)
            return judgement
        with self._lock:
            self.stats.failures += 1
            self._consecutive_failures += 1
            in_a_row = self._consecutive_failures
        if in_a_row >= self.max_consecutive_failures:
            raise JudgeError(
                f"{self.name} judge: {in_a_row} judgements in a row failed after "
                f"{self.retries + 1} attempts each; last error: {last_error}"
            )
        log.warning(
            "%s judge gave up after %d attempts (%s); counting the tip as dismissed",
            self.name,
            self.retries + 1,
            last_error,
        )
        return FALLBACK

    def _ask(self, request: JudgeRequest, previous: tuple[str, str] | None) -> str:
        """One attempt. ``previous`` is the last refused reply and why it was refused."""
        raise NotImplementedError

    def _recall(self, request: JudgeRequest) -> Judgement | None:
        return None

    def _remember(self, request: JudgeRequest, judgement: Judgement) -> None:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: rare for APIs, so fall back to our own backoff
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


class LLMJudge(_RetryingJudge):
    """Asks an OpenAI-compatible endpoint (``base_url`` like ``http://127.0.0.1:8080/v1``).

    ``timeout_s`` bounds each network operation (connect, send, each read). Environment proxy
    settings are ignored, so a local endpoint is never sent through a proxy. ``json_mode`` sends
    ``response_format: {"type": "json_object"}`` until the server refuses it (see the module
    docstring); turn it off to never send it.
    Close the judge (or use it as a context manager) to release its connections.
    """

    name = "llm"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 30,
        retries: int = 3,
        backoff_s: float = 0.5,
        cache_dir: str | os.PathLike[str] | None = None,
        temperature: float = 0.0,
        json_mode: bool = True,
        max_consecutive_failures: int = 5,
    ) -> None:
        super().__init__(
            retries=retries,
            backoff_s=backoff_s,
            max_consecutive_failures=max_consecutive_failures,
        )
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigurationError(f"LLM base URL {base_url!r} is not a URL: {exc}") from None
        if url.scheme not in {"http", "https"} or not url.host:
            raise ConfigurationError(
                f"LLM base URL must start with http:// or https://, got {base_url!r}"
            )
        if not model:
            raise ConfigurationError("LLM model must be named")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ConfigurationError(f"timeout_s must be a positive number, got {timeout_s!r}")
        if not math.isfinite(temperature) or not 0 <= temperature <= 2:
            raise ConfigurationError(f"temperature must be in [0, 2], got {temperature!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = float(timeout_s)
        self.temperature = float(temperature)
        self.json_mode = json_mode
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        headers = {"User-Agent": "oo-ml-judge"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            trust_env=False, timeout=httpx.Timeout(self.timeout_s), headers=headers
        )
        self._finalizer = weakref.finalize(self, self._client.close)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def messages(self, request: JudgeRequest) -> list[dict[str, str]]:
        """The chat messages for ``request`` (also what the cache key hashes)."""
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": request.prompt()},
        ]

    def _ask(self, request: JudgeRequest, previous: tuple[str, str] | None) -> str:
        messages = self.messages(request)
        if previous is not None:
            reply, reason = previous
            messages += [
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": f"That reply was refused ({reason}). "
                    "Reply again with the JSON object only.",
                },
            ]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
        }
        json_mode = self.json_mode
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        url = f"{self.base_url}/chat/completions"
        response = self._post(url, body)
        if json_mode and response.status_code == 400 and "response_format" in response.text:
            with self._lock:
                if self.json_mode:
                    self.json_mode = False
                    log.warning(
                        "%s refused response_format (%s); asking without it from now on",
                        url,
                        _short(response.text),
                    )
            del body["response_format"]
            response = self._post(url, body)
        status = response.status_code
        if status in _RETRYABLE_STATUS or status >= 500:
            raise _AttemptError(
                f"{url} answered {status}: {_short(response.text)}", _retry_after(response)
            )
        if not response.is_success:
            raise ConfigurationError(
                f"{url} answered {status} (check the base URL, model and key): "
                f"{_short(response.text)}"
            )
        try:
            content = response.json()["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _AttemptError(
                f"{url} did not answer with a chat completion: {_short(response.text)}"
            ) from None
        # A null content (a refusal, a tool call) is the model's reply, and an invalid one.
        return content if isinstance(content, str) else ""

    def _post(self, url: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._client.post(url, json=body)
        except httpx.TimeoutException:
            raise _AttemptError(f"no answer from {url} within {self.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _AttemptError(f"{url}: {type(exc).__name__}: {exc}") from None

    def _cache_path(self, request: JudgeRequest) -> Path | None:
        if self.cache_dir is None:
            return None
        material = json.dumps(
            [self.base_url, self.model, self.temperature, self.messages(request)],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return self.cache_dir / f"{hashlib.sha256(material.encode()).hexdigest()}.json"

    def _recall(self, request: JudgeRequest) -> Judgement | None:
        path = self._cache_path(request)
        if path is None:
            return None
        try:
            return parse_judgement(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValidationError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", path, exc)
            return None

    def _remember(self, request: JudgeRequest, judgement: Judgement) -> None:
        path = self._cache_path(request)
        if path is None:
            return
        # A full disk or read-only cache must not end a run whose judgements are still good.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(format_judgement(judgement))
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("could not cache an LLM judgement in %s: %s", path.parent, exc)
