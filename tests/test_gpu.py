"""GPU leases between real processes; device counts are faked, so no GPU is needed."""

import json
import os
import subprocess
import sys
import time
from itertools import pairwise

import pytest

from facerepro.training import gpu

# A job that leases, reports what it got, and holds the lease until its stdin closes.
HOLDER = """
import os, sys
from facerepro.training import gpu
with gpu.lease({n}, {lock_dir!r}, device_count={count}, poll_s=0.02, timeout_s=20) as ids:
    print(",".join(ids), os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    sys.stdin.read()
"""


# A training job as workflow/scripts/train.py starts it (launch.run_job), on a machine faked to
# have {count} GPUs: the trainer and torchrun are replaced by a recorder that holds the lease a
# moment. Every job waits for the `go` file, so that all of them ask for GPUs at once.
TRAINING_JOB = """
import functools, json, os, time
from pathlib import Path
import torch
torch.cuda.device_count = lambda: {count}
torch.cuda.is_available = lambda: True
from facerepro.training import gpu, launch
gpu.lease = functools.partial(gpu.lease, poll_s=0.02)   # waiting jobs retry fast (default 5 s)

def hold(workers):
    def record(**kwargs):
        start = time.monotonic()
        time.sleep({hold_s})
        print(json.dumps({{"devices": os.environ["CUDA_VISIBLE_DEVICES"].split(","),
                          "workers": workers, "start": start, "end": time.monotonic()}}),
              flush=True)
    return record

launch.train = hold(1)
launch.torchrun = lambda workers, kwargs: hold(workers)(**kwargs)
Path({ready!r}).touch()
while not Path({go!r}).exists():
    time.sleep(0.01)
launch.run_job(run_name="job", run={{"gpus": {gpus}}}, shard_dir="shard", model_path="model.pt",
               info_path="model.json", checkpoint_dir="checkpoints", device="cuda")
assert "CUDA_VISIBLE_DEVICES" not in os.environ
"""


@pytest.fixture()
def holders():
    started = []

    def start(lock_dir, count, n=1):
        env = {k: v for k, v in os.environ.items() if k != gpu.VISIBLE}
        code = HOLDER.format(n=n, lock_dir=str(lock_dir), count=count)
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def no_scheduler(monkeypatch):
    monkeypatch.delenv(gpu.VISIBLE, raising=False)


def leased(proc) -> str:
    """The ids a holder leased, once it holds them; checks it exported exactly those."""
    line = proc.stdout.readline().split()
    assert line, "holder exited without a lease"
    ids, visible = line
    assert ids == visible
    return ids


def release(proc) -> None:
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def test_two_jobs_lease_different_devices(tmp_path, holders):
    jobs = [holders(tmp_path, count=2) for _ in range(2)]
    got = [leased(job) for job in jobs]  # both hold their lease at this point
    assert sorted(got) == ["0", "1"]
    for job in jobs:
        release(job)


def test_four_concurrent_jobs_get_four_devices(tmp_path, holders):
    jobs = [holders(tmp_path, count=4) for _ in range(4)]
    assert sorted(leased(job) for job in jobs) == ["0", "1", "2", "3"]
    for job in jobs:
        release(job)


def test_killed_job_frees_its_device(tmp_path, holders):
    first = holders(tmp_path, count=1)
    assert leased(first) == "0"
    first.kill()  # SIGKILL: no cleanup code runs
    first.wait()
    second = holders(tmp_path, count=1)
    assert leased(second) == "0"
    release(second)


def test_timeout_when_every_device_is_held(tmp_path, holders):
    job = holders(tmp_path, count=1)
    leased(job)
    with pytest.raises(TimeoutError, match=str(tmp_path)):
        with gpu.lease(1, tmp_path, device_count=1, poll_s=0.02, timeout_s=0.2):
            pass
    release(job)


def test_partial_acquisition_is_given_back(tmp_path, holders):
    job = holders(tmp_path, count=2)
    taken = leased(job)
    with pytest.raises(TimeoutError):
        with gpu.lease(2, tmp_path, device_count=2, poll_s=0.02, timeout_s=0.2):
            pass
    # the device the failed attempt had locked is free again
    with gpu.lease(1, tmp_path, device_count=2, timeout_s=0) as ids:
        assert ids == [str(1 - int(taken))]
    release(job)


def test_environment_is_restored_after_the_lease(tmp_path):
    with gpu.lease(2, tmp_path, device_count=3) as ids:
        assert ids == ["0", "1"]
        assert os.environ[gpu.VISIBLE] == "0,1"
    assert gpu.VISIBLE not in os.environ
    with pytest.raises(RuntimeError, match="inside"):
        with gpu.lease(1, tmp_path, device_count=1):
            raise RuntimeError("inside")
    assert gpu.VISIBLE not in os.environ
    # the failed block released its lock too
    with gpu.lease(1, tmp_path, device_count=1, timeout_s=0) as ids:
        assert ids == ["0"]


def test_scheduler_choice_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu.VISIBLE, "3,5,7")
    locks = tmp_path / "locks"
    with gpu.lease(2, locks, device_count=1) as ids:
        assert ids == ["3", "5"]
        assert os.environ[gpu.VISIBLE] == "3,5,7"
    assert os.environ[gpu.VISIBLE] == "3,5,7"
    assert not locks.exists()
    with pytest.raises(ValueError, match="4 GPUs requested but the scheduler made 3"):
        with gpu.lease(4, locks):
            pass


def test_more_devices_than_present_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"3 GPUs requested but this machine has 2; lower"):
        with gpu.lease(3, tmp_path, device_count=2):
            pass


def test_zero_devices_touches_nothing(tmp_path):
    locks = tmp_path / "locks"
    with gpu.lease(0, locks, device_count=0) as ids:
        assert ids == []
        assert gpu.VISIBLE not in os.environ
    assert not locks.exists()


def test_lock_file_content_is_not_trusted(tmp_path):
    # a stale note (e.g. from a killed job) names a holder that does not hold the lock
    (tmp_path / "gpu0.lock").write_text("pid 1 since forever\n")
    with gpu.lease(1, tmp_path, device_count=1, timeout_s=0) as ids:
        assert ids == ["0"]
        assert f"pid {os.getpid()}" in (tmp_path / "gpu0.lock").read_text()


def test_cuda_is_first_touched_under_the_lease(monkeypatch, tmp_path):
    # CUDA reads CUDA_VISIBLE_DEVICES once, when first used: the lease must come first.
    import torch

    from facerepro.training import launch

    monkeypatch.delenv(gpu.VISIBLE, raising=False)
    seen = []

    def available():
        seen.append(os.environ.get(gpu.VISIBLE))
        return True

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", available)
    monkeypatch.setattr(launch, "LOCK_DIR", str(tmp_path))
    assert gpu.uses_cuda("auto") and not seen          # counting GPUs does not touch CUDA
    with launch.leased_device("auto") as device:
        assert device.type == "cuda"
    assert seen == ["0"]
    assert gpu.VISIBLE not in os.environ
    assert not gpu.uses_cuda("cpu")


def test_concurrent_training_jobs_never_share_a_device(tmp_path):
    """Four training jobs (one of them DDP on 2 GPUs) start at once on a machine with 3 fake
    GPUs: the jobs that find no free device wait, and no device is held by two at a time."""
    count, gpus = 3, [1, 2, 1, 1]
    env = {k: v for k, v in os.environ.items() if k != gpu.VISIBLE}
    env["FACEREPRO_GPU_LOCKS"] = str(tmp_path / "locks")
    go = tmp_path / "go"
    jobs = []
    for i, n in enumerate(gpus):
        code = TRAINING_JOB.format(count=count, gpus=n, hold_s=0.5, go=str(go),
                                   ready=str(tmp_path / f"ready{i}"))
        jobs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                     text=True, env=env))
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(len(jobs))):
            assert time.monotonic() < deadline, "training jobs did not start"
            assert all(job.poll() is None for job in jobs), "a training job died at start"
            time.sleep(0.05)
        go.touch()
        out = [job.communicate(timeout=60)[0] for job in jobs]
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
    assert [job.returncode for job in jobs] == [0] * len(jobs)
    records = [json.loads(text) for text in out]
    # each job saw exactly its own count of devices; the DDP one ran torchrun on both
    assert [len(r["devices"]) for r in records] == gpus
    assert [r["workers"] for r in records] == gpus
    held = sorted((r["start"], r["end"], d) for r in records for d in r["devices"])
    assert {d for _, _, d in held} == {str(i) for i in range(count)}
    for device in map(str, range(count)):
        spans = [(start, end) for start, end, d in held if d == device]
        for (_, end), (start, _) in pairwise(spans):
            assert end <= start, f"GPU {device} was held by two jobs at once: {spans}"
    # and the jobs did run side by side: at some moment every device was busy
    busiest = max(sum(start <= t < end for start, end, _ in held) for t, _, _ in held)
    assert busiest == count
