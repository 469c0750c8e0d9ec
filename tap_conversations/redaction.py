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
#: Texts up to this long are remembered with their masked form, at most KNOWN_TEXTS.
KNOWN_TEXT_CHARS = 200
KNOWN_TEXTS = 256
#: Loggers that print request URLs (urllib3 logs each request line at DEBUG).
URL_LOGGERS = ("urllib3.connectionpool",)

#: Reentrant: `unregister` runs in a client's finalizer, which the garbage collector may
#: call in the middle of `register` in the same thread. A reentrant call can only leave
#: a stale, larger pattern (one that masks too much), never a smaller one. Nothing else
#: is locked while it is held, so a finalizer in another thread cannot deadlock on it.
_lock = threading.RLock()
#: Registered tokens, counted: two clients with one token unregister it only once both close.
_tokens: Counter[str] = Counter()
#: The longest masked form: text beyond a cut by more than this cannot change what is kept.
_longest = 0


def _forms_of(tokens: list[str]) -> set[str]:
    """Each token, and its forms inside a repr (backslashes and quotes escaped) and a URL."""
    return {
        form
        for token in tokens
        for form in (token, repr(token)[1:-1], url_quote(token, safe=""), quote_plus(token))
    }


class _Masker:
    """The masking of one set of token forms.

    The pattern of every piece is an alternation of some 4 x L²/2 literals for a token
    of L characters: compiling it took 40 ms for a 43-character token, and searching a
    60-character request path with it 40-90 µs, for every request (the endpoint names
    in counters and logs are masked). Every piece starts with one of the forms' first
    windows (its first TOKEN_PIECE_CHARS characters, or the whole of a shorter form), so
    a text none of whose windows is one has nothing to mask: it is returned after a set
    lookup per position, and the pattern is compiled only for a text that has one. A
    short text masked before is looked up (a request's endpoint template: a dict lookup
    instead of some 30,000 instructions).
    """

    def __init__(self, forms: set[str]) -> None:
        self.forms = frozenset(forms)
        sizes = {form: min(TOKEN_PIECE_CHARS, len(form)) for form in forms}
        self.sizes = sorted(set(sizes.values()))
        self.windows = frozenset(
            form[start : start + size]
            for form, size in sizes.items()
            for start in range(len(form) - size + 1)
        )
        self._pattern: re.Pattern[str] | None = None
        #: Short texts already masked: most are the same few endpoint templates
        #: (`/conversations/{id}/summary`), masked for every request.
        self._known: dict[str, str] = {}

    def pattern(self) -> re.Pattern[str]:
        """A pattern of every piece of each form of TOKEN_PIECE_CHARS or more, longest first."""
        if self._pattern is None:  # two threads may both compile it: the same pattern
            self._pattern = _pieces_of(self.forms)
        return self._pattern

    def mask(self, text: str) -> str:
        """`text` with every piece of the forms masked."""
        known = self._known.get(text)
        if known is not None:
            return known
        masked = self._mask(text)
        if len(text) <= KNOWN_TEXT_CHARS:
            if len(self._known) >= KNOWN_TEXTS:
                self._known.clear()
            self._known[text] = masked
        return masked

    def _mask(self, text: str) -> str:
        windows = self.windows
        for size in self.sizes:
            for start in range(len(text) - size + 1):
                if text[start : start + size] in windows:
                    return self.pattern().sub(MASK, text)
        return text


def _pieces_of(forms: frozenset[str]) -> re.Pattern[str]:
    """A pattern of every piece of each form of TOKEN_PIECE_CHARS or more, longest first."""
    pieces: set[str] = set()
    for form in forms:
        size = min(TOKEN_PIECE_CHARS, len(form))
        pieces.update(
            form[start:end]
            for start in range(len(form))
            for end in range(start + size, len(form) + 1)
        )
    return re.compile("|".join(map(re.escape, sorted(pieces, key=len, reverse=True))))


_masker: _Masker | None = None


class _MaskingFilter(logging.Filter):
    """Masks registered tokens in the records of a logger that prints URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _masker is not None:
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
    global _masker, _longest  # noqa: PLW0603  # one registry for the process, by design
    forms = {form for form in _forms_of(list(_tokens)) if form}
    _masker = _Masker(forms) if forms else None
    _longest = max(map(len, forms), default=0)


def mask(text: str) -> str:
    """`text` with every piece of a registered token of 6 or more characters masked."""
    masker = _masker
    return text if masker is None else masker.mask(text)


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
