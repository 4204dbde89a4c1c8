"""The replica's model thread: one thread for every model call, batches merged while it is busy."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from mleval_serve.model_thread import ModelThread


class _SlowPredictor:
    """Stands in for an ultralytics predictor: records each call's images and thread, and
    answers with the value of each image, after ``seconds``."""

    def __init__(self, seconds: float = 0.05, fail_on: int | None = None):
        self.seconds, self.fail_on = seconds, fail_on
        self.calls: list[list[int]] = []
        self.threads: set[int] = set()

    def predict(self, images, conf):
        self.threads.add(threading.get_ident())
        values = [int(image[0, 0, 0]) for image in images]
        self.calls.append(values)
        time.sleep(self.seconds)
        if self.fail_on in values:
            raise RuntimeError(f"model failed on {self.fail_on}")
        return [(value, conf) for value in values]


def _image(value: int) -> np.ndarray:
    return np.full((2, 2, 3), value, np.uint8)


def _run(coroutine):
    return asyncio.run(coroutine)


def test_a_lone_request_runs_at_once_and_all_calls_share_one_thread():
    predictor = _SlowPredictor(seconds=0.0)

    async def scenario():
        model = ModelThread(threads=0)
        model.max_batch_size = 8
        await model.call(predictor.predict, [_image(9)], 0.1)  # e.g. the warm-up
        first = await model.predict(predictor, _image(1), 0.5)
        second = await model.predict(predictor, _image(2), 0.5)
        return first, second

    first, second = _run(scenario())
    assert first == ((1, 0.5), 1) and second == ((2, 0.5), 1)
    assert predictor.calls == [[9], [1], [2]]
    assert len(predictor.threads) == 1 and threading.get_ident() not in predictor.threads


def test_requests_arriving_while_the_model_is_busy_go_in_together_up_to_the_batch_size():
    predictor = _SlowPredictor(seconds=0.05)

    async def scenario():
        model = ModelThread(threads=0)
        model.max_batch_size = 3
        first = asyncio.ensure_future(model.predict(predictor, _image(0), 0.5))
        await asyncio.sleep(0.01)  # the model is busy with the first image
        rest = [asyncio.ensure_future(model.predict(predictor, _image(v), 0.2 + v / 100)) for v in range(1, 6)]
        return await asyncio.gather(first, *rest)

    results = _run(scenario())
    assert predictor.calls == [[0], [1, 2, 3], [4, 5]]
    assert [value for (value, _), _ in results] == [0, 1, 2, 3, 4, 5]  # each answer reaches its request
    assert [size for _, size in results] == [1, 3, 3, 3, 2, 2]
    assert results[2][0][1] == pytest.approx(0.21)  # one call, the lowest threshold of its batch


def test_each_model_waiting_gets_its_own_call_and_a_failure_stays_in_its_batch():
    old, new = _SlowPredictor(seconds=0.05, fail_on=1), _SlowPredictor(seconds=0.0)

    async def scenario():
        model = ModelThread(threads=0)
        model.max_batch_size = 8
        busy = asyncio.ensure_future(model.predict(new, _image(0), 0.5))
        await asyncio.sleep(0.01)
        waiting = [asyncio.ensure_future(model.predict(predictor, _image(v), 0.5))
                   for predictor, v in ((old, 1), (new, 2), (old, 3), (new, 4))]
        return await asyncio.gather(busy, *waiting, return_exceptions=True)

    busy, old_1, new_2, old_3, new_4 = _run(scenario())
    assert old.calls == [[1, 3]] and new.calls == [[0], [2, 4]]
    assert isinstance(old_1, RuntimeError) and isinstance(old_3, RuntimeError)
    assert (new_2, new_4) == (((2, 0.5), 2), ((4, 0.5), 2))  # served after the failed batch


def test_a_batch_wait_holds_an_idle_models_batch_until_it_is_full_or_the_wait_ends():
    predictor = _SlowPredictor(seconds=0.0)

    async def scenario():
        model = ModelThread(threads=0)
        model.configure(max_batch_size=3, batch_wait_timeout_s=5.0)
        started = time.perf_counter()
        full = await asyncio.gather(*(model.predict(predictor, _image(v), 0.5) for v in (1, 2, 3)))
        full_s = time.perf_counter() - started  # full at once: no wait
        model.configure(max_batch_size=8, batch_wait_timeout_s=0.2)
        started = time.perf_counter()
        lone = await model.predict(predictor, _image(4), 0.5)
        return full, full_s, lone, time.perf_counter() - started

    full, full_s, lone, lone_s = _run(scenario())
    assert predictor.calls == [[1, 2, 3], [4]]
    assert [size for _, size in full] == [3, 3, 3] and lone == ((4, 0.5), 1)
    assert full_s < 1.0  # the 5 s wait ended as soon as the batch was full
    assert lone_s >= 0.2  # a lone request waited for company until the wait ran out
