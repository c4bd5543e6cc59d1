"""The time budget (`derain train --minutes`): stops on time, validated and checkpointed, resumes
exactly; can fit the schedule to the budget; device-side batches train and resume too."""

from __future__ import annotations

import csv
import json
import time

import pytest
import torch

from derain_cli.train import TrainConfig, loop, resume_run, start_run
from derain_cli.train.loop import Trainer, read_checkpoint


def _rows(run_dir):
    with open(run_dir / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


class _SimulatedClock:
    """Every training step takes ``step_s`` seconds; nothing else takes time."""

    def __init__(self, monkeypatch, step_s: float):
        self.now, self.step_s = 0.0, step_s
        step = Trainer.train_step

        def timed_step(trainer):
            self.now += self.step_s
            return step(trainer)

        monkeypatch.setattr(Trainer, "train_step", timed_step)
        monkeypatch.setattr(loop, "_clock", lambda: self.now)


def test_budget_stops_on_time_validated_checkpointed_and_resumes_exactly(tiny_config, tmp_path, monkeypatch):
    tiny_config.device = "cpu"  # bit-identical resumption is a CPU promise (see test_train)
    tiny_config.steps, tiny_config.val_every = 12, 100
    straight = start_run(TrainConfig.from_dict(tiny_config.to_dict()), tmp_path / "straight", log=lambda m: None)

    _SimulatedClock(monkeypatch, step_s=0.5)
    tiny_config.max_minutes = 0.05  # 3 s: six steps of 0.5 s
    stopped = start_run(tiny_config, tmp_path / "budget", log=lambda m: None)
    assert (stopped.step, stopped.finished) == (6, False)
    state = read_checkpoint(tmp_path / "budget")
    assert state["step"] == 6 and state["elapsed_s"] == pytest.approx(3.0)
    # the stopped weights were validated: the export's score and the curve's last point
    last = _rows(tmp_path / "budget")[-1]
    assert last["step"] == "6" and last["val_psnr"]
    assert state["val"]["psnr"] == pytest.approx(float(last["val_psnr"]))
    assert (tmp_path / "budget" / "progress.png").stat().st_size > 0

    resumed = resume_run(tmp_path / "budget", log=lambda m: None, max_minutes=60)
    assert resumed.finished and resumed.step == 12
    a, b = read_checkpoint(tmp_path / "straight"), read_checkpoint(tmp_path / "budget")
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), f"ema.{k} differs after a budget stop and resume"
    assert straight.val_psnr == pytest.approx(resumed.val_psnr)


def test_fit_steps_to_budget_ends_the_schedule_inside_the_budget(tiny_config, tmp_path, monkeypatch):
    _SimulatedClock(monkeypatch, step_s=0.1)
    tiny_config.steps, tiny_config.val_every, tiny_config.log_every = 1_000_000, 10_000, 50
    tiny_config.max_minutes, tiny_config.fit_steps_to_budget = 0.5, True  # 30 s: 300 steps of 0.1 s
    result = start_run(tiny_config, tmp_path / "run", log=lambda m: None)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    # 1.5 s (5 %) to settle, then 50 steps and 3 s to measure the rate; 97 % of the rest is planned
    assert 270 <= result.step == saved["steps"] < 300
    assert result.finished and saved["fit_steps_to_budget"] is False
    assert _rows(tmp_path / "run")[-1]["val_psnr"]  # the final step was validated
    lr_end = read_checkpoint(tmp_path / "run")["scheduler"]["_last_lr"][0]
    assert lr_end == pytest.approx(tiny_config.min_lr, rel=0.05)  # the cosine ran its full course


def test_budget_stops_on_the_wall_clock(tiny_config, tmp_path):
    """Real time: a run with far too many steps for its budget returns about when the budget ends."""
    tiny_config.steps, tiny_config.val_every, tiny_config.log_every = 1_000_000, 10_000, 10_000
    tiny_config.max_minutes = 0.05
    t0 = time.monotonic()
    result = start_run(tiny_config, tmp_path / "run", log=lambda m: None)
    took = time.monotonic() - t0
    assert not result.finished and result.step > 0
    assert took < 3 + 15  # setup, one step past the budget, the final validation and checkpoint
    assert read_checkpoint(tmp_path / "run")["step"] == result.step


def test_device_batches_train_and_resume_exactly(tiny_config, tmp_path):
    """synth_device=device on CPU tensors: a run stopped and resumed equals a straight one."""
    tiny_config.device = "cpu"  # bit-identical resumption is a CPU promise (see test_train)
    tiny_config.synth_device, tiny_config.synth_preset = "device", "light:1,streaks:2,none:1"
    start_run(TrainConfig.from_dict(tiny_config.to_dict()), tmp_path / "straight", log=lambda m: None)
    start_run(TrainConfig.from_dict(tiny_config.to_dict()), tmp_path / "split", stop_at=3, log=lambda m: None)
    resume_run(tmp_path / "split", log=lambda m: None)
    a, b = read_checkpoint(tmp_path / "straight"), read_checkpoint(tmp_path / "split")
    assert a["step"] == b["step"] == 6
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), f"ema.{k} differs after resume"


def test_minutes_option_of_derain_train(tiny_config, tmp_path):
    """`derain train ... --minutes M` sets the run's budget; a stopped run exits 130 and resumes."""
    from derain_cli.cli import main

    values = tiny_config.to_dict()
    data, synth = values.pop("data"), values.pop("synth")
    values.update(steps=1_000_000, val_every=10_000, log_every=10_000)
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(values))
    run = tmp_path / "run"
    code = main(["train", "derainlite", "--data", data[0], "--synth", synth[0], "--config", str(cfg_file),
                 "--out", str(run), "--minutes", "0.02"])
    assert code == 130
    assert json.loads((run / "config.json").read_text())["max_minutes"] == 0.02
    step = read_checkpoint(run)["step"]
    assert main(["train", "--resume", str(run), "--minutes", "0.01"]) == 130
    assert read_checkpoint(run)["step"] > step
    assert main(["train", "derainlite", "--out", str(tmp_path / "other"), "--minutes", "0"]) == 2


def test_init_weights_start_the_model_and_must_fit(tiny_config, tmp_path):
    from derain_cli.errors import UsageError
    from derain_cli.train import export_run

    tiny_config.steps = 2
    start_run(TrainConfig.from_dict(tiny_config.to_dict()), tmp_path / "first", log=lambda m: None)
    export_run(tmp_path / "first", tmp_path / "first.safetensors")
    exported = read_checkpoint(tmp_path / "first")["ema"]

    tiny_config.init_weights, tiny_config.steps = str(tmp_path / "first.safetensors"), 1
    tiny_config.lr = 1e-12  # one step that changes (almost) nothing: the start is visible
    start_run(TrainConfig.from_dict(tiny_config.to_dict()), tmp_path / "second", log=lambda m: None)
    second = read_checkpoint(tmp_path / "second")["model"]
    for k, v in exported.items():
        torch.testing.assert_close(second[k], v, atol=1e-6, rtol=0)

    tiny_config.arch_config = {"channels": 6, "blocks": [1, 1], "max_channels": 8}
    with pytest.raises(UsageError, match="do not fit this architecture"):
        start_run(tiny_config, tmp_path / "third", log=lambda m: None)
