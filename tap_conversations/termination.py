"""Stopping on SIGTERM/SIGINT: the last line whole, the final state written, gone at once.

The signal handler runs in the main thread between two bytecodes, which can be in the
middle of writing a large record: Python runs handlers inside a write that the signal
interrupted. Writing the final STATE from there put it onto the cut line. So while a
line is being written the signal only waits; it is acted on as soon as the line is
out. Then the process writes the tap's state as one more STATE line, logs one line
and ends with 128 + the signal, without waiting for worker threads: a fetch pool
sleeping in the pacer, or a request waiting on a socket, must not hold a container's
stop past its grace period. Nothing is lost by not waiting: the state written covers
exactly the conversations whose records came before it. When the reader is gone (a
stopped target closes the pipe, so the line being written fails), no state can be
written: the process still ends the same way, with one line that says so.

The reader can also go without a signal: a target that crashed closes its end of the
pipe and the next line's write fails (a broken pipe). Raised from there, that error
would end the run with the SDK's "An unhandled error occurred while syncing", a
traceback and a wait for the worker threads; instead the process logs one line that
says the reader went away and ends at once with `READER_GONE_EXIT`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl
from singer_sdk.singerlib import StateMessage

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = logging.getLogger("tap_conversations")
#: Exit status after a signal, as shells report it: 128 + the signal number.
SIGNAL_EXIT_BASE = 128
#: Exit status when the output's reader went away (a broken pipe): the run failed.
READER_GONE_EXIT = 1


class Stopper:
    """Acts on a termination signal at the next safe point: between two output lines."""

    def __init__(self) -> None:
        self.writing = False
        self.pending: int | None = None
        self.stopping = False
        self.write_final_state: Callable[[], None] | None = None

    def on_signal(self, signum: int) -> None:
        """The signal handler's work: stop now, or right after the line being written."""
        if self.stopping:
            return  # a second signal while stopping: already on the way out
        if self.writing:
            self.pending = signum
            return
        self.stop(signum)

    def line_written(self, *, output_ok: bool = True) -> None:
        """Called after every output line: act on a signal that waited for it.

        Also after a line whose write failed (`output_ok` false: the reader is gone, a
        stopped target's broken pipe): the signal then ends the process, not the
        write's error, whose way out would wait for the worker threads.
        """
        if self.pending is not None and not self.stopping:
            self.stop(self.pending, output_ok=output_ok)

    def stop(self, signum: int, *, output_ok: bool = True) -> None:
        """Write the final state, say so once, and end the process."""
        self.stopping = True
        try:
            if output_ok:
                try:
                    if self.write_final_state is not None:
                        self.write_final_state()
                except (OSError, ValueError):
                    output_ok = False
            if not output_ok:
                # The reader is gone (a broken pipe, a closed stdout), perhaps with part
                # of a line: nothing more is written. Still one line and the same exit.
                LOGGER.warning(
                    "Interrupted by signal %d; the output was closed, so no final state "
                    "was written: the next run resumes from the last state the target "
                    "committed.",
                    signum,
                )
            else:
                LOGGER.warning(
                    "Interrupted by signal %d; the last state written lets the next run resume.",
                    signum,
                )
        finally:
            # A closed pipe: nothing more can be said.
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os._exit(SIGNAL_EXIT_BASE + signum)

    def reader_gone(self) -> None:
        """The output's reader went away without a signal: say so once, end the process."""
        self.stopping = True  # a signal from now on: already on the way out
        try:
            LOGGER.error(
                "The output's reader went away (broken pipe): the target stopped reading, "
                "so this run ends here. Check the target's log for why; the next run "
                "resumes from the last state the target committed."
            )
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            # No flush of stdout: its buffer can only fail again on the closed pipe.
            os._exit(READER_GONE_EXIT)


#: One per process, as signal handlers are.
STOPPER = Stopper()


class LineSafeWriter(MsgSpecWriter):
    """The msgspec Singer writer: whole lines only, and the stopper told when writing.

    Why not the SDK's `write_message`: it ignores the count `write` returns. With an
    unbuffered stdout (PYTHONUNBUFFERED=1, common in container images) `write` goes
    straight to the pipe, and a signal that interrupts it makes it return a short
    count: the rest of the line was silently dropped. Here the rest is written too.
    """

    def serialize_message(self, message: Any) -> bytearray:  # noqa: ANN401  # the SDK's Message
        """The message as one JSON line; a STATE without a deep copy of its state.

        The SDK's `to_dict` of a STATE message is `dataclasses.asdict`, which copies the
        whole state, object by object, for every message; the line is the same without.
        """
        if isinstance(message, StateMessage):
            return serialize_jsonl({"type": message.type, "value": message.value})
        return super().serialize_message(message)

    def write_message(self, message: Any) -> None:  # noqa: ANN401  # the SDK's Message
        """Write one message as one whole line; a signal meanwhile waits for it."""
        STOPPER.writing = True
        output_ok = True
        reader_gone = False
        try:
            # A copy: the encoder reuses one buffer for every message.
            line = memoryview(bytes(self.format_message(message)))
            out = sys.stdout.buffer
            output_ok = False  # from here a failure may leave part of a line out
            while line:
                written = out.write(line)
                line = line[written or 0 :]
            sys.stdout.flush()
            output_ok = True
        except (BrokenPipeError, ConnectionResetError):
            reader_gone = True  # the target closed its end of the pipe
        finally:
            STOPPER.writing = False
            STOPPER.line_written(output_ok=output_ok)  # a waiting signal ends it first
        if reader_gone:
            STOPPER.reader_gone()
