"""A small server-sent events (``text/event-stream``) parser over byte chunks.

Follows the WHATWG HTML "event stream interpretation" rules: UTF-8 with a leading BOM dropped,
``\\r\\n``/``\\n``/``\\r`` line endings, ``data`` lines joined with ``\\n``, one optional space
after the colon, comment lines starting with ``:``, ``event``/``id``/``retry`` fields, and an
incomplete message at end of stream discarded.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional

__all__ = ["SSEMessage", "SSEParser", "iter_messages"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True)
class SSEMessage:
    """One dispatched event.

    Attributes:
        data: the ``data`` lines joined with ``\\n``.
        event: the ``event`` field, ``"message"`` when absent.
        id: the last event id seen on the stream so far (it carries over between events,
            as in the spec); ``None`` if the stream never sent one.
        retry: the last valid ``retry`` value (milliseconds) seen on the stream so far, or ``None``.
    """

    data: str
    event: str = "message"
    id: Optional[str] = None
    retry: Optional[int] = None


class SSEParser:
    """Incremental parser: ``feed()`` byte chunks, get back the messages they complete.

    Chunks may split lines, line endings (``\\r`` | ``\\n``) and UTF-8 sequences anywhere.
    Invalid UTF-8 is replaced with U+FFFD, as the spec requires.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True
        self._partial: List[str] = []  # pieces of the current, unterminated line
        self._pending_cr = False  # the last chunk ended in "\r": a leading "\n" next is the same line end
        self._data: List[str] = []
        self._event = ""
        self.last_id: Optional[str] = None
        self.retry: Optional[int] = None

    def feed(self, chunk: bytes) -> List[SSEMessage]:
        """Consume one chunk of the stream; return the messages it completed, in order."""
        return self._feed_text(self._decoder.decode(chunk))

    def close(self) -> None:
        """End of stream: drop any incomplete line and message (the spec discards them)."""
        self._decoder.decode(b"", final=True)
        self._partial = []
        self._pending_cr = False
        self._data = []
        self._event = ""

    def _feed_text(self, text: str) -> List[SSEMessage]:
        if not text:
            return []
        if self._at_start:
            # The BOM may arrive alone or split; only drop it once some text exists.
            self._at_start = False
            if text.startswith(_BOM):
                text = text[1:]
        pos = 0
        if self._pending_cr:
            self._pending_cr = False
            if text.startswith("\n"):
                pos = 1
        messages: List[SSEMessage] = []
        end = len(text)
        while pos < end:
            match = _LINE_END.search(text, pos)
            if match is None:
                self._partial.append(text[pos:])
                break
            if self._partial:
                self._partial.append(text[pos:match.start()])
                line = "".join(self._partial)
                self._partial = []
            else:
                line = text[pos:match.start()]
            pos = match.end()
            if pos == end and match.group() == "\r":
                self._pending_cr = True
            message = self._process_line(line)
            if message is not None:
                messages.append(message)
        return messages

    def _process_line(self, line: str) -> Optional[SSEMessage]:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # comment
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self.last_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        # Any other field name is ignored.
        return None

    def _dispatch(self) -> Optional[SSEMessage]:
        data, event = self._data, self._event
        self._data = []
        self._event = ""
        if not data:
            return None  # no data lines: nothing to dispatch
        return SSEMessage("\n".join(data), event or "message", self.last_id, self.retry)


def iter_messages(chunks: Iterable[bytes]) -> Iterator[SSEMessage]:
    """Parse an iterable of byte chunks into messages, lazily."""
    parser = SSEParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    parser.close()
