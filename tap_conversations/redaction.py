"""Masking the API token in what the tap quotes from the server: one place, one job.

A server or proxy may echo the request's Authorization header, whole or cut, into any
answer, a 200 as well as an error page. Every message that quotes server content
(an error body, a listed item, a cursor, a field's value) goes through `quote` or
`excerpt`, which mask every piece of a registered token of TOKEN_PIECE_CHARS or more
characters, then cut the text. The API client registers its token when it is created
and unregisters it when it is closed, so call sites never carry the token around.

Server content also travels back in URLs (a listed id in a path, a cursor in the query),
which urllib3 logs at DEBUG: its request-line logger gets a filter that masks the same way.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from urllib.parse import quote as url_quote
from urllib.parse import quote_plus

#: Quoted server content is cut to this many characters (after the token is masked).
QUOTE_CHARS = 200
#: The shortest piece of the token that is masked wherever it appears in a message.
TOKEN_PIECE_CHARS = 6
#: What a masked piece reads as.
MASK = "[api_token]"
#: Loggers that print request URLs (urllib3 logs each request line at DEBUG).
URL_LOGGERS = ("urllib3.connectionpool",)

#: Reentrant: `unregister` runs in a client's finalizer, which the garbage collector may
#: call in the middle of `register` in the same thread. A reentrant call can only leave
#: a stale, larger pattern (one that masks too much), never a smaller one. Nothing else
#: is locked while it is held, so a finalizer in another thread cannot deadlock on it.
_lock = threading.RLock()
#: Registered tokens, counted: two clients with one token unregister it only once both close.
_tokens: Counter[str] = Counter()
_pattern: re.Pattern[str] | None = None
#: The longest masked form: text beyond a cut by more than this cannot change what is kept.
_longest = 0


def _forms_of(tokens: list[str]) -> set[str]:
    """Each token, and its forms inside a repr (backslashes and quotes escaped) and a URL."""
    return {
        form
        for token in tokens
        for form in (token, repr(token)[1:-1], url_quote(token, safe=""), quote_plus(token))
    }


def _pieces_of(forms: set[str]) -> re.Pattern[str] | None:
    """A pattern of every piece of each form of TOKEN_PIECE_CHARS or more, longest first."""
    pieces: set[str] = set()
    for form in forms:
        size = min(TOKEN_PIECE_CHARS, len(form))
        pieces.update(
            form[start:end]
            for start in range(len(form))
            for end in range(start + size, len(form) + 1)
        )
    if not pieces:
        return None
    return re.compile("|".join(map(re.escape, sorted(pieces, key=len, reverse=True))))


class _MaskingFilter(logging.Filter):
    """Masks registered tokens in the records of a logger that prints URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is not None:
            text = record.getMessage()
            masked = mask(text)
            if masked != text:
                record.msg, record.args = masked, None
        return True


_FILTER = _MaskingFilter()


def register(token: str) -> None:
    """Mask `token` in everything quoted from now on (until `unregister`)."""
    if not token:
        return
    with _lock:
        _tokens[token] += 1
        _recompile()
    for name in URL_LOGGERS:  # outside the lock: logging takes a lock of its own
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def unregister(token: str) -> None:
    """Undo one `register(token)`."""
    with _lock:
        if _tokens[token] <= 1:
            _tokens.pop(token, None)
        else:
            _tokens[token] -= 1
        _recompile()


def _recompile() -> None:
    global _pattern, _longest  # noqa: PLW0603  # one registry for the process, by design
    forms = _forms_of(list(_tokens))
    _pattern = _pieces_of(forms)
    _longest = max(map(len, forms), default=0)


def mask(text: str) -> str:
    """`text` with every piece of a registered token of 6 or more characters masked."""
    pattern = _pattern
    return text if pattern is None else pattern.sub(MASK, text)


def excerpt(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` masked, then cut to `limit` characters, without quotes.

    Masking comes before the cut, so a cut never leaves a piece of the token unmasked
    (only the part of the text a cut could keep is searched: a body may be megabytes).
    """
    return mask(text[: limit + _longest])[:limit]


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """`value` as a message quotes it, masked (see `excerpt`).

    A string is the `repr` of at most `limit` characters of it; any other value is its
    `repr`, cut to `limit`.
    """
    if isinstance(value, str):
        return repr(excerpt(value, limit))
    return excerpt(repr(value), limit)
