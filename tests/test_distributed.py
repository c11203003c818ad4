"""Data parallelism: two CPU processes (gloo) train as one process would on their two batches
together, and only rank 0 writes the run dir."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seq2seq.distributed import TIMEOUT, World, close_world, init_world, torchrun_world
from seq2seq.errors import UserError
from tests.conftest import TINY, batch_of, tiny_update, toy_pairs, wait_for_step, write_jsonl

STEPS, B = 4, 6  # updates, pairs per rank and step


def train_steps(world: World, rank_batches: list[list[tuple[str, str]]],
                poisoned: int | None = None) -> tuple[list[list[float]], dict]:
    """STEPS updates of a tiny bahdanau model, each on this rank's batch (the one at index
    `poisoned` given a NaN readout, hence a NaN loss); returns each step's (loss sum, target
    tokens, skipped) over all ranks, and the final weights."""
    update, tok = tiny_update(world)
    step = 0
    update.model.readout.register_forward_hook(lambda module, inputs, t: t * float("nan") if step == poisoned else t)
    stats = []
    for step, pairs in enumerate(rank_batches):
        stats.append(update(batch_of(tok, pairs), update.lr(step)).read())
    return stats, update.model.state_dict()


def steps_of(rank: int, size: int) -> list[list[tuple[str, str]]]:
    pairs = toy_pairs(STEPS * B * 2, seed=9)
    per_step = [pairs[i * 2 * B:(i + 1) * 2 * B] for i in range(STEPS)]  # 2B pairs a step in all
    return [step[rank * len(step) // size:(rank + 1) * len(step) // size] for step in per_step]


def worker(rank: int, size: int, init_file: str, out: str, poisoned_on_rank_1: int | None) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    try:
        poisoned = poisoned_on_rank_1 if rank == 1 else None
        torch.save(train_steps(World(rank, size), steps_of(rank, size), poisoned),
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("poisoned", [None, 1])
def test_two_processes_with_batch_b_match_one_process_with_batch_2b(tmp_path, poisoned):
    """With `poisoned`, rank 1 alone gets a NaN loss at that step: every rank skips the update,
    as one process skips it for its whole batch."""
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(tmp_path), poisoned), nprocs=2, join=True)
    single_stats, single_weights = train_steps(World(), steps_of(0, 1), poisoned)
    single_losses = [loss / tokens if tokens else None for loss, tokens, *_ in single_stats]
    assert [skipped for _, _, skipped, _ in single_stats] == [float(i == poisoned) for i in range(STEPS)]
    for rank in range(2):
        stats, weights = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert [s[2] for s in stats] == [s[2] for s in single_stats]
        assert [s[3] for s in stats] == pytest.approx([s[3] for s in single_stats], rel=1e-4)  # gradient norms
        losses = [loss / tokens if tokens else None for loss, tokens, *_ in stats]
        assert all(a == b or abs(a - b) < 1e-5 for a, b in zip(losses, single_losses)), (losses, single_losses)
        for key in single_weights:
            torch.testing.assert_close(weights[key], single_weights[key], atol=1e-5, rtol=1e-4)
    assert single_losses[-1] < single_losses[0]


SLOW = 2.0  # seconds rank 0 takes before it answers


def decide_stop(rank: int, size: int, port: int, out: str) -> None:
    """Join as torchrun would have it; rank 0 takes SLOW seconds to decide to stop, and the
    others ask for its decision at once."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    world, _ = init_world(torch.device("cpu"))
    try:
        timeouts = [group._get_backend(torch.device("cpu")).options._timeout.total_seconds()
                    for group in (dist.group.WORLD, world.control)]
        asked = time.monotonic()
        if world.main:
            time.sleep(SLOW)
        stop = world.from_main("time budget 60 s reached" if world.main else None)
        result = {"timeouts": timeouts, "stop": stop, "waited": time.monotonic() - asked}
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
    finally:
        close_world(world)


def test_ranks_agree_on_stopping_through_a_cpu_group_while_rank_0_is_slow(tmp_path):
    mp.spawn(decide_stop, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    for result in results:
        assert result["stop"] == "time budget 60 s reached"
        # the default group (gloo here, NCCL on CUDA) and the control group
        assert result["timeouts"] == [TIMEOUT.total_seconds()] * 2
        assert result["waited"] >= SLOW
    assert TIMEOUT.total_seconds() >= 3600  # > NCCL's 10-minute default, for tokenizer training on a large corpus


def test_torchrun_two_cpu_processes_write_one_run_dir(tmp_path):
    data = write_jsonl(tmp_path / "data")
    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29731",
            "-m", "seq2seq", "train", "--config", str(TINY), "--dataset", str(data), "--max-steps", "4",
            "--epochs", "50", "--device", "cpu", "--run-dir", str(run), "--tensorboard"]
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl", "run.json",
                                                     "spm.model", "tensorboard", "train.lock", "train.log"]
    assert len(list((run / "tensorboard").iterdir())) == 1  # one event file: rank 0's
    log = (run / "train.log").read_text()
    assert log.count("model bahdanau:") == 1 and "2 processes" in log  # rank 0 alone logs
    assert json.loads((run / "run.json").read_text())["steps"] == 4
    # resumed by one process, each update would train on half the tokens: refused
    resumed = subprocess.run([sys.executable, "-m", "seq2seq", "train", "--resume", str(run), "--max-steps", "6"],
                             capture_output=True, text=True, env=env)
    assert resumed.returncode == 2 and resumed.stderr == (
        f"error: run {run} was trained by 2 processes, not 1: another number would change its tokens per update; "
        f"resume it with torchrun --nproc_per_node 2 -m seq2seq train --resume {run}\n")
    assert json.loads((run / "run.json").read_text())["steps"] == 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args) -> list[str]:
    """`torchrun --nproc_per_node 2 -m seq2seq ARGS` on the CPU."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
            "-m", "seq2seq", *map(str, args)]


def test_a_torchrun_run_killed_and_resumed_with_two_processes_ends_as_one_never_stopped(tmp_path):
    """SIGKILL to the whole job (agent and ranks) past its checkpoint of step 13, then resumed by two
    processes: weights, optimizer state, each rank's random state (dropout) and progress equal an
    uninterrupted run's."""
    data = write_jsonl(tmp_path / "data")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = ["train", "--config", TINY, "--dataset", data, "--device", "cpu", "--max-steps", 40, "--epochs", 100,
            "--set", "train.checkpoint_every=1", "--set", "train.eval_every=15"]
    straight = subprocess.run(torchrun(*args, "--run-dir", tmp_path / "straight"), capture_output=True, text=True,
                              env=env)
    assert straight.returncode == 0, straight.stderr
    killed = tmp_path / "killed"
    job = subprocess.Popen(torchrun(*args, "--run-dir", killed), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    wait_for_step(killed, 13, job)
    os.killpg(job.pid, signal.SIGKILL)  # the job's own process group: torchrun and both ranks
    job.wait()
    stopped_at = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"]
    assert 13 <= stopped_at < 40
    resumed = subprocess.run(torchrun("train", "--resume", killed), capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (torch.load(run / "checkpoints" / "last.pt", weights_only=True) for run in (tmp_path / "straight", killed))
    assert a["progress"]["step"] == b["progress"]["step"] == 40 and a["world_size"] == b["world_size"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    moments_a, moments_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(moments_a[p][k], moments_b[p][k]) for p in moments_a for k in moments_a[p])
    assert len(a["rank_rng"]) == 2 and not torch.equal(a["rank_rng"][0]["torch"], a["rank_rng"][1]["torch"])
    assert all(torch.equal(x["torch"], y["torch"]) for x, y in zip(a["rank_rng"], b["rank_rng"]))
    timeless = ("elapsed", "warmup_elapsed")
    assert {k: v for k, v in a["progress"].items() if k not in timeless} == \
        {k: v for k, v in b["progress"].items() if k not in timeless}


@pytest.mark.parametrize("env", [{"WORLD_SIZE": "2"}, {"WORLD_SIZE": "two", "RANK": "0"},
                                 {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "x"}])
def test_a_torchrun_environment_that_is_not_one_is_a_clear_error(monkeypatch, env):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match="start distributed runs with torchrun"):
        torchrun_world()
