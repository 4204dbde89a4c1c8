"""The one thread of a replica that runs its model, and the endpoint's one batcher in front of it.

Every torch call of a replica (loading, warm-up, predictions) runs on this one thread.
PyTorch's OpenMP runtime keeps a team of worker threads per calling thread; once a second
thread has run the model, the teams outnumber the CPUs and each small operation waits on
sleeping threads (yolo11n on 2 CPUs: 67 ms a call instead of 42).

Predictions that come while the model is busy wait together and go in as one batch (up to
``max_batch_size`` images) the moment it is free. With the default ``batch_wait_timeout_s`` of 0
a request that comes to an idle model runs at once; a longer wait holds an idle model's next
batch until it is full or the wait is over (a GPU gains from a few milliseconds). Under load a
batch is what arrived during the previous call, so reading and decoding the next requests
overlaps the model.

This is the endpoint's only batching path. Serve's ``@serve.batch`` is not stacked in front of
it: Serve closes a batch when its wait ends, whether or not the model is free, so on its own it
runs batches of one back to back under load, or makes requests wait for a batch that could
already run; two batchers in series also made a request's wait depend on both.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def predict_images(predictor, images: list[np.ndarray], conf: float, threads: int) -> list:
    """The model call on ``threads`` torch threads: as many as the replica holds CPUs. ultralytics
    would use the machine's CPUs minus one, which on a small machine leaves part of the replica
    idle and on a large one oversubscribes it. The count belongs to the calling thread."""
    import torch

    if threads >= 1 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return predictor.predict(images, conf=conf)


class ModelThread:
    """Runs a replica's model calls on one thread; merges the predictions waiting for it."""

    def __init__(self, threads: int):
        self.threads = threads  # torch threads of a model call: the replica's CPUs
        self.max_batch_size = 1
        self.batch_wait_timeout_s = 0.0  # how long an idle model waits for its batch to fill
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mleval-model")
        self._waiting: list[tuple[Any, np.ndarray, float, asyncio.Future]] = []
        self._batch_full = asyncio.Event()  # an idle model's waiting batch is full: run it now
        self._runner: asyncio.Task | None = None  # drains the waiting predictions while there are any

    async def call(self, function, *args) -> Any:
        """``function(*args)`` on the model thread (loading a model, warming it up)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def predict(self, predictor, image: np.ndarray, conf: float) -> tuple[Any, int]:
        """The prediction for one image and the size of the batch it went in with."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((predictor, image, conf, future))
        if len(self._waiting) >= self.max_batch_size:
            self._batch_full.set()
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run_waiting())
        return await future

    def configure(self, *, max_batch_size: int, batch_wait_timeout_s: float) -> None:
        """Applies to the next batch (a new version's settings, in place)."""
        self.max_batch_size, self.batch_wait_timeout_s = int(max_batch_size), float(batch_wait_timeout_s)

    async def _run_waiting(self) -> None:
        # The runner starts when the model is idle: that first batch may wait to fill; the batches
        # after it are what arrived while the model was busy, and go in at once.
        if self.batch_wait_timeout_s > 0 and len(self._waiting) < self.max_batch_size:
            self._batch_full.clear()
            try:
                await asyncio.wait_for(self._batch_full.wait(), self.batch_wait_timeout_s)
            except TimeoutError:
                pass
        while self._waiting:
            await self._run(self._next_batch())

    def _next_batch(self) -> list[tuple[Any, np.ndarray, float, asyncio.Future]]:
        """The oldest waiting predictions of the first one's model (a version swap can leave two
        models waiting), at most ``max_batch_size``; the others keep their order."""
        predictor = self._waiting[0][0]
        batch, rest = [], []
        for item in self._waiting:
            (batch if item[0] is predictor and len(batch) < self.max_batch_size else rest).append(item)
        self._waiting = rest
        return batch

    async def _run(self, batch: list[tuple[Any, np.ndarray, float, asyncio.Future]]) -> None:
        batch = [item for item in batch if not item[3].done()]  # the client went away
        if not batch:
            return
        try:
            predictions = await self.call(predict_images, batch[0][0], [item[1] for item in batch],
                                          min(item[2] for item in batch), self.threads)
        except Exception as error:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (*_, future), prediction in zip(batch, predictions):
            if not future.done():
                future.set_result((prediction, len(batch)))
