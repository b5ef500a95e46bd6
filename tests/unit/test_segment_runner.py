"""SegmentRunner: segments spread over the -nvidia GPUs (driven with a stand-in for the
transcode itself: this machine has no GPU; the NVENC path is the engine's)."""

import asyncio
import threading

from lpnode.transcode import runner as runner_mod
from lpnode.transcode.runner import SegmentRunner


def test_each_segment_goes_to_the_gpu_with_fewest_running(monkeypatch):
    release = threading.Event()
    started: list[int | None] = []

    def fake_transcode(source, profiles, *, nvidia, gpu):
        assert nvidia is (gpu is not None)
        started.append(gpu)
        release.wait(5)
        return gpu

    monkeypatch.setattr(runner_mod, "transcode_segment", fake_transcode)
    r = SegmentRunner(capacity=5, gpus=[0, 1])

    async def scenario():
        tasks = [asyncio.create_task(r.transcode(b"", [])) for _ in range(5)]
        await asyncio.sleep(0.2)
        busy = r.running()
        release.set()
        return busy, await asyncio.gather(*tasks), r.running()

    busy, results, after = asyncio.run(scenario())
    r.close()
    assert busy == {0: 3, 1: 2} and sorted(results) == [0, 0, 0, 1, 1]
    assert after == {0: 0, 1: 0}


def test_without_gpus_segments_run_on_the_cpu(monkeypatch):
    seen = []
    monkeypatch.setattr(runner_mod, "transcode_segment",
                        lambda s, p, *, nvidia, gpu: seen.append((nvidia, gpu)))
    r = SegmentRunner(capacity=1)
    asyncio.run(r.transcode(b"", []))
    r.close()
    assert seen == [(False, None)] and r.running() == {}
