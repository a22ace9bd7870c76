"""One run lifecycle: how a batch's run starts, is cancelled and ends, whatever drives it.

Three runs drive a batch: online, request by request (nbtools._engine.online), through a provider's Batch API
(batchapi/run.py), and several endpoints at once (launch.MultiRun). Each is a ``Run``: it is started once
(``start()`` in a task of its own, ``run()`` in the task that awaits it, ``block()`` from synchronous code),
``cancel()`` stops it and keeps what finished, and however it ends (done, cancelled, failed, interrupted, or
cancelled before it ever ran) its result is closed exactly once. A run writes only ``go()``, the work, and the
few hooks where the three really differ. It is its result's ``Control`` (nbtools._engine.state).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Generic

from nbtools._base.errors import BatchInterrupted, EndpointError
from nbtools._engine.blocking import run_blocking
from nbtools._engine.state import State


class Run(Generic[State]):
    """What drives one batch to its end; its result's Control."""

    def __init__(self, result: State) -> None:
        self.result = result
        self.main_task: asyncio.Task[State] | None = None
        self._cancel_requested = False
        self._stop_error: BaseException | None = None  # what stopped the whole batch, set by stop()
        result.attach(self)

    # -- starting ------------------------------------------------------------------------------------
    def start(self) -> asyncio.Task[State]:
        """Run in a task of its own on the running loop; returns that task (awaiting it awaits the run)."""
        task = self.main_task = asyncio.get_running_loop().create_task(self.main())
        task.add_done_callback(self._on_main_done)
        return task

    async def run(self) -> State:
        """Run in the current task: cancelling it cancels the run."""
        task = asyncio.current_task()
        assert task is not None
        self.main_task = task  # it runs main() below, so it ends with our State
        task.add_done_callback(self._on_main_done)
        return await self.main()

    def block(self) -> State:
        """Run to the end from synchronous code (a script, or a notebook cell). Ctrl-C or the kernel's stop button
        cancels it and raises BatchInterrupted, whose ``.result`` holds the finished rows."""
        try:
            return run_blocking(self.run(), cleanup=self.wait_closed)
        except BatchInterrupted:
            raise
        except KeyboardInterrupt:
            raise BatchInterrupted(self.result) from None

    # -- Control: what the result asks of its run ------------------------------------------------------
    @property
    def limit(self) -> int:
        raise NotImplementedError

    def set_limit(self, value: int) -> None:
        raise NotImplementedError

    @property
    def in_flight(self) -> int:
        raise NotImplementedError

    @property
    def peak(self) -> int:
        raise NotImplementedError

    @property
    def limit_path(self) -> list[int]:
        """Each concurrency limit in force, in turn (one, unless it changed while the batch ran)."""
        return [self.limit]

    def cancel(self) -> None:
        """Stop the run; the rows that finished are kept."""
        self._cancel_requested = True
        if self.main_task is not None and not self.main_task.done():
            self.main_task.cancel()

    def stop(self, error: BaseException) -> None:
        """End the whole batch with ``error`` (a refused key, an endpoint that is not there, a broken callback)."""
        if self._stop_error is None:
            self._stop_error = error
            if self.main_task is not None:
                self.main_task.cancel()

    async def wait_closed(self) -> None:
        """Wait until nothing of the batch is left running (after ``cancel()``, or an interrupt)."""
        if self.main_task is not None and not self.main_task.done():
            await asyncio.wait([self.main_task])
        await self._wind_down()
        self.close(cancelled=True)

    # -- the run ---------------------------------------------------------------------------------------
    async def main(self) -> State:
        result = self.result
        result.start_clock()
        try:
            await self.go()
        except asyncio.CancelledError:
            await self._wind_down()
            stop = self._stop_error
            if stop is not None:  # we stopped it: the batch failed, and what finished is not lost with it
                self._fail(stop, not_sent=True)
                raise stop from None
            self._cancelled()
            self.close(cancelled=True)
            if self._cancel_requested and self._owns_cancel and self.main_task is not None:
                if sys.version_info >= (3, 11):
                    self.main_task.uncancel()  # a cancel we asked for is not the caller's cancel
                return result
            raise
        except BaseException as exc:
            await self._wind_down()
            self._fail(exc)
            raise
        self._ended()
        return result

    async def go(self) -> None:
        """The work: send the batch and fill its rows."""
        raise NotImplementedError

    def close(self, *, cancelled: bool, not_sent: bool = False) -> None:
        """Mark the result finished (idempotent): rows still open end cancelled, or not sent if never started."""
        if not self.result.done:
            self.result.close(cancelled=cancelled, not_sent=not_sent)

    def _fail(self, error: BaseException, *, not_sent: bool = False) -> None:
        self.result.failure = error
        if isinstance(error, EndpointError):
            error.result = self.result  # the rows that finished reach the caller with the error
        self.close(cancelled=False, not_sent=not_sent)

    def _on_main_done(self, task: asyncio.Task[State]) -> None:
        """The main task ended, possibly before it ever ran (cancelled at once): close the result anyway."""
        self.close(cancelled=True)
        if not task.cancelled():
            task.exception()  # a failed background batch keeps its error on result.failure; don't log it

    # -- where runs differ -----------------------------------------------------------------------------
    _owns_cancel = True  # does cancel() cancel the main task (so a CancelledError after it is ours to end on)?

    def _ended(self) -> None:
        """``go()`` returned: rows never started were held back (by max_cost) and are not sent."""
        self.close(cancelled=False, not_sent=True)

    def _cancelled(self) -> None:
        """The run was cancelled (by ``cancel()``, or by an interrupt), and is about to close."""

    async def _wind_down(self) -> None:
        """Stop whatever of the run is still going, before the result is closed."""
