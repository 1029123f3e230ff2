"""Several processes (``torchrun`` + DDP, :mod:`benchmark.train.distributed`) train like one.

Two gloo ranks on the CPU stand in for two GPUs. What must hold, and why it can:

* the contrastive loss gathers every rank's embeddings with their gradients (open_clip's
  ``gather_with_grad`` + ``local_loss``), so the ranks' mean loss is the loss of one process on
  the concatenated batch, and the gradient reaching each rank's embeddings is that slice of one
  process's gradient;
* a pretraining job run by 2 processes draws the same global batch per step as 1 process (each
  keeping its half), averages gradients through DDP, and so follows the same loss trajectory and
  ends at the same weights — up to float rounding, since the ranks add up partial sums in another
  order than one process does (``RTOL``). Only rank 0 writes files.

The multi-process tests skip, with the reason, where this torch has no gloo backend — except under
``CI=true``, where they must run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from benchmark.config import stage_spec
from benchmark.objectives.contrastive import ImageTextContrastive, info_nce
from benchmark.train import distributed
from tests.helpers import REPO

WORLD = 2
RTOL = 1e-4  # losses, 1 vs 2 processes: float rounding of partial sums (measured: ≤ 5e-7 on a loss of 2.77)
# Final weights: AdamW divides each gradient component by its running scale, so components whose true
# gradient is ~0 (rounding noise) take lr-sized steps of any sign; measured ≤ 1.3e-4 between 1 and 2
# processes, against ≥ 0.07 with the gradient wrong (no DDP, a gather without gradients, or no gather).
ATOL_WEIGHTS = 1e-3
SPAWN_TIMEOUT_S = 120

GLOO = torch.distributed.is_available() and torch.distributed.is_gloo_available()
needs_gloo = pytest.mark.skipif(
    not GLOO and os.environ.get("CI") != "true",
    reason="this torch build has no torch.distributed gloo backend, which the 2-process tests need "
    "(they run anyway under CI=true)",
)


# -- one process: nothing changes -----------------------------------------------------------------


def test_one_process_needs_no_process_group_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    cpu = torch.device("cpu")
    assert distributed.setup(cpu) is cpu
    assert not torch.distributed.is_initialized()
    assert distributed.world() == distributed.World(0, 1, 0) and distributed.is_main()
    batch = {"image": torch.zeros(3, 2), "text": {"input_ids": torch.zeros(3, 4)}}
    assert distributed.shard(batch) is batch

    def loss_fn(step: int) -> dict[str, torch.Tensor]:
        return {"itc": torch.tensor(float(step))}

    assert distributed.wrap_for_ddp(torch.nn.Linear(2, 2), loss_fn) is loss_fn
    window = {"loss": [torch.tensor(1.0), 2.0]}
    assert distributed.mean_over_ranks(window) is window
    assert distributed.sum_over_ranks(3.5) == 3.5 and distributed.sum_over_ranks(None) is None


def test_contrastive_loss_without_a_process_group_is_the_plain_info_nce() -> None:
    image, text = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    itc = ImageTextContrastive()
    expected = info_nce(itc.logit_scale.exp() * image @ text.t())
    assert torch.equal(itc(image, text), expected)


# -- sharding the global batch --------------------------------------------------------------------


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, world: int) -> None:
    """This process as rank ``rank`` of ``world`` (the process group faked: sharding needs only its size)."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setattr(distributed, "_group_size", lambda: world)


def test_each_rank_keeps_its_contiguous_slice_of_the_global_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = {
        "image": torch.arange(8).view(8, 1),
        "text": {"input_ids": torch.arange(16).view(8, 2)},
        "boxes": list("abcdefgh"),
        "name": "scenes",
    }
    slices = []
    for rank in range(WORLD):
        _as_rank(monkeypatch, rank, WORLD)
        slices.append(distributed.shard(batch))
    assert slices[0]["image"].flatten().tolist() == [0, 1, 2, 3]
    assert slices[1]["text"]["input_ids"].tolist() == [[8, 9], [10, 11], [12, 13], [14, 15]]
    assert slices[1]["boxes"] == list("efgh") and slices[1]["name"] == "scenes"
    assert torch.equal(torch.cat([s["image"] for s in slices]), batch["image"])


def test_a_batch_size_that_does_not_divide_by_the_world_size_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _as_rank(monkeypatch, 0, 4)
    with pytest.raises(ValueError, match="batch_size 6 does not divide by the 4 training processes"):
        distributed.shard({"image": torch.zeros(6, 3)})
    with pytest.raises(ValueError, match="different sizes"):
        distributed.shard({"image": torch.zeros(8, 3), "concepts": torch.zeros(4, 3)})


def test_sharding_without_the_process_group_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="call setup"):
        distributed.shard({"image": torch.zeros(4, 3)})


# -- two processes ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _spawn_contrastive(out: Path) -> None:
    """:func:`_contrastive_rank` on :data:`WORLD` gloo ranks; a rank's exception or a hang fails the test."""
    import torch.multiprocessing as mp

    context = mp.start_processes(
        _contrastive_rank, args=(WORLD, _free_port(), out), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{WORLD} ranks did not finish in {SPAWN_TIMEOUT_S}s")


def _global_embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    """A global batch of 8 normalised image and text embeddings, the same in every process."""
    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(8, 16, generator=generator), dim=-1)
    text = F.normalize(image + 0.5 * torch.randn(8, 16, generator=generator), dim=-1)
    return image, text


def _contrastive_rank(rank: int, world: int, port: int, out: Path) -> None:
    """One spawned rank, in torchrun's environment: its half of the global batch through the gathered
    loss; its loss and gradients."""
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    image, text = _global_embeddings()
    rows = slice(rank * 8 // world, (rank + 1) * 8 // world)
    image, text = image[rows].clone().requires_grad_(), text[rows].clone().requires_grad_()
    itc = ImageTextContrastive()
    loss = itc(image, text)
    # DDP averages the ranks' gradients: it differentiates the ranks' mean loss, whose share is loss / world
    (loss / world).backward()
    with torch.no_grad():  # no autograd, no gathering: the rank's own batch's loss (evaluation, FLOP counts)
        own = itc(image, text)
    torch.save(
        {"loss": loss.detach(), "own": own, "image": image.grad, "text": text.grad, "scale": itc.logit_scale.grad},
        out / f"rank{rank}.pt",
    )


@needs_gloo
def test_gathered_contrastive_loss_and_gradients_equal_one_process_on_the_global_batch(tmp_path: Path) -> None:
    _spawn_contrastive(tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    image, text = (t.clone().requires_grad_() for t in _global_embeddings())
    itc = ImageTextContrastive()
    loss = itc(image, text)
    loss.backward()
    assert torch.stack([r["loss"] for r in ranks]).mean().item() == pytest.approx(loss.item(), rel=1e-6)
    torch.testing.assert_close(torch.cat([r["image"] for r in ranks]), image.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.cat([r["text"] for r in ranks]), text.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(sum(r["scale"] for r in ranks), itc.logit_scale.grad, rtol=1e-5, atol=1e-7)
    half = slice(0, 8 // WORLD)  # rank 0's rows, scored against its own rows only
    assert ranks[0]["own"].item() == pytest.approx(itc(image[half], text[half]).item(), rel=1e-6)


def _pretrain_spec(smoke_config: dict[str, Any]) -> dict[str, Any]:
    """contrastive_clip at the smoke model sizes: 12 steps of a global batch of 16, a training state every
    5 steps, the validation loss after every step (the per-step trajectory; it runs on every rank).

    The learning rate is high enough for the loss to move in 12 steps; beyond ~12 steps at this rate the
    tiny model leaves its collapsed start through unstable steps that magnify float rounding (1 and 2
    processes then drift apart by ~1e-4, as two single-process runs with another summation order would)."""
    optim = {"steps": 12, "batch_size": 16, "lr": 1e-2, "warmup_steps": 2, "checkpoint_every": 5}
    config = {
        **smoke_config,
        "pretrain": {**smoke_config["pretrain"], **optim},
        "validation": {**smoke_config["validation"], "every": 1, "patience": None},  # all 12 steps, no early stop
    }
    return stage_spec(config, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)


def _trained(out: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return json.loads((out / "result.json").read_text()), load_file(out / "model.safetensors")


@needs_gloo
def test_two_processes_under_torchrun_pretrain_like_one_on_the_same_global_batch(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict[str, Any], tmp_path: Path
) -> None:
    """The workflow's launch of a job on several GPUs — ``python -m benchmark -v pretrain --processes N
    --spec …``, which starts itself again under torchrun — here with 2 gloo ranks, against the same spec in
    one process."""
    from benchmark.stages import run_pretrain

    spec = _pretrain_spec(smoke_config)
    run_pretrain(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / "one")
    command = [
        *(sys.executable, "-m", "benchmark", "-v", "pretrain", "--processes", str(WORLD)),
        *("--spec", json.dumps(spec), "--threads", "1", "--data", str(tiny_dataset)),
        *("--tokenizer", str(tiny_tokenizer_file), "--out", str(tmp_path / "two")),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=SPAWN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-5000:]
    for rank in range(WORLD):  # the ranks really trained together (not twice the same single-process run)
        assert f"rank {rank} of {WORLD}: joined the gloo process group" in result.stderr
        assert f"rank {rank} of {WORLD}: training steps run through DistributedDataParallel" in result.stderr

    one, one_weights = _trained(tmp_path / "one")
    two, two_weights = _trained(tmp_path / "two")
    files = {run: sorted(p.name for p in (tmp_path / run).iterdir()) for run in ("one", "two")}
    assert files["two"] == files["one"], "the same files, training states and best weights removed"
    curves = {run: record["train"]["validation"]["curve"] for run, record in (("one", one), ("two", two))}
    assert [p["step"] for p in curves["two"]] == list(range(spec["optim"]["steps"] + 1))
    val = {run: [p["val_loss"] for p in curve] for run, curve in curves.items()}
    train = {run: [p["loss"] for p in r["train"]["history"]] for run, r in (("one", one), ("two", two))}
    assert max(val["one"]) - min(val["one"]) > 0.005, "the trajectory must move to be compared"
    print(
        "max |loss(1 process) - loss(2 processes)|: validation, per step",
        max(abs(a - b) for a, b in zip(val["one"], val["two"], strict=True)),
        "; training, per history point",
        max(abs(a - b) for a, b in zip(train["one"], train["two"], strict=True)),
    )
    assert val["two"] == pytest.approx(val["one"], rel=RTOL)
    assert train["two"] == pytest.approx(train["one"], rel=RTOL)
    assert two["efficiency"]["flops_train_per_step"] == pytest.approx(
        one["efficiency"]["flops_train_per_step"], rel=0.01
    ), "a step's FLOPs are the global batch's, whatever the number of processes"
    assert one_weights.keys() == two_weights.keys()
    for name, value in one_weights.items():
        torch.testing.assert_close(two_weights[name], value, rtol=0, atol=ATOL_WEIGHTS, msg=name)
