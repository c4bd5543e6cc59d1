"""The training loop: learns, checkpoints, and resumes to bit-identical weights."""

from __future__ import annotations

import csv
import itertools
import json

import pytest
import torch

from derain_cli.errors import UsageError
from derain_cli.train import TrainConfig, resume_run, start_run
from derain_cli.train.loop import lr_factor, read_checkpoint


def _log_rows(run_dir):
    with open(run_dir / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_short_run_lowers_the_loss_and_writes_its_files(tiny_config, tmp_path):
    tiny_config.steps = 30
    tiny_config.val_every = 15
    tiny_config.log_every = 5
    tiny_config.synth = []  # the same 3 training pairs every step: the loss must fall
    result = start_run(tiny_config, tmp_path / "run", log=lambda m: None)
    assert result.finished and result.step == 30
    rows = _log_rows(tmp_path / "run")
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < 0.8 * losses[0]
    assert [r["step"] for r in rows if r["val_psnr"]] == ["15", "30"]
    assert result.val_psnr == pytest.approx(float(rows[-1]["val_psnr"]))
    assert (tmp_path / "run" / "progress.png").stat().st_size > 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 30


def _without_time(rows):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]


def _state(run_dir):
    return read_checkpoint(run_dir)


def test_resume_continues_exactly(tiny_config, tmp_path):
    # Bit-identical resumption is a CPU promise: on CUDA, cuDNN's convolution backward may sum in a
    # different order from run to run, so the two runs could differ in the last bits.
    tiny_config.device = "cpu"
    straight = start_run(tiny_config, tmp_path / "straight", log=lambda m: None)
    half = start_run(TrainConfig.from_dict(tiny_config.to_dict()), tmp_path / "split", stop_at=3,
                     log=lambda m: None)
    assert (straight.step, half.step, half.finished) == (6, 3, False)
    resumed = resume_run(tmp_path / "split", log=lambda m: None)
    assert resumed.step == 6 and resumed.finished

    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"
    for k, sa in a["optimizer"]["state"].items():
        for name, v in sa.items():
            assert torch.equal(v, b["optimizer"]["state"][k][name])
    assert a["scheduler"] == b["scheduler"]
    assert a["numpy_rng"] == b["numpy_rng"]
    assert _without_time(_log_rows(tmp_path / "straight")) == _without_time(_log_rows(tmp_path / "split"))


def test_start_refuses_an_existing_run(tiny_config, tmp_path):
    tiny_config.steps = 1
    start_run(tiny_config, tmp_path / "run", log=lambda m: None)
    with pytest.raises(UsageError, match="already holds a training run; continue it with --resume"):
        start_run(tiny_config, tmp_path / "run", log=lambda m: None)


def test_resume_of_a_folder_without_a_run_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not a training run directory"):
        resume_run(tmp_path, log=lambda m: None)


def test_config_file_rejects_unknown_options(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"steps": 10, "learning_rate": 0.1}))
    with pytest.raises(UsageError, match=r"cfg.json: unknown training option\(s\) learning_rate"):
        TrainConfig.from_file(path)


@pytest.mark.parametrize("sides", [[320], [320, 480, 720]])
def test_config_file_synth_short_side_needs_two_numbers(tmp_path, sides):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"steps": 10, "synth_short_side": sides}))
    with pytest.raises(UsageError, match=r"cfg.json: synth_short_side must be \(low, high\), got \["):
        TrainConfig.from_file(path)
    path.write_text(json.dumps({"steps": 10, "synth_short_side": [300, 600]}))
    assert TrainConfig.from_file(path).synth_short_side == (300, 600)


def test_no_training_data_is_a_usage_error(tmp_path):
    cfg = TrainConfig(arch="derainlite", steps=1)
    with pytest.raises(UsageError, match="no training data"):
        start_run(cfg, tmp_path / "run", log=lambda m: None)


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-5)
    f = [lr_factor(s, cfg) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in itertools.pairwise(f[10:]))  # non-increasing after warm-up
    assert f[100] == pytest.approx(0.01)


def test_train_entry_point_config_file_and_resume(tiny_config, tmp_path):
    from derain_cli.train import train

    cfg_file = tmp_path / "cfg.json"
    values = tiny_config.to_dict()
    data, synth = values.pop("data"), values.pop("synth")
    values["steps"] = 2
    cfg_file.write_text(json.dumps(values))
    result = train("derainlite", tmp_path / "run", data=data, synth=synth, config_file=cfg_file, log=lambda m: None)
    assert result.step == 2 and result.finished
    with pytest.raises(UsageError, match="trains derainlite, not testnet"):
        train("testnet", None, resume=tmp_path / "run", log=lambda m: None)
    with pytest.raises(UsageError, match="drop --data"):
        train("derainlite", None, data=data, resume=tmp_path / "run", log=lambda m: None)


def test_training_forward_matches_the_runner_contract():
    """Training goes through the same conversions as inference (channel order, range, padding)."""
    from derain_cli.models import Contract, LoadedModel

    class OddNet(torch.nn.Module):  # distinguishes channels, scale and position
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, z):
            assert z.shape[-1] % 8 == 0 and z.shape[-2] % 8 == 0
            return self.conv(z), None

    torch.manual_seed(0)
    net = OddNet()
    contract = Contract(channels="BGR", value_range=(0.0, 255.0), size_multiple=8, output=0)
    x = torch.rand(1, 3, 13, 21, requires_grad=True)
    loaded = LoadedModel(net, contract)
    y = loaded.forward(x)
    y.sum().backward()  # differentiable
    assert x.grad is not None and y.shape == x.shape
    assert torch.allclose(y.detach(), loaded(x.detach()), atol=1e-5)


TINY_PLNLIN = {"channels": 8, "encoder_depths": [1, 1], "decoder_depths": [1, 1], "fusion_depths": [1, 1],
               "window": 4, "heads": 2, "mlp_ratio": 1.0}


def _mcddl_config(tiny_config: TrainConfig) -> TrainConfig:
    cfg = TrainConfig.from_dict(tiny_config.to_dict())
    cfg.arch, cfg.arch_config, cfg.gan, cfg.d_every = "plnlin", dict(TINY_PLNLIN), "mcddl", 2
    return cfg


def test_mcddl_run_logs_its_losses_and_resumes_exactly(tiny_config, tmp_path):
    """`derain train plnlin` with gan=mcddl: generator and discriminator both checkpoint and resume."""
    tiny_config.device = "cpu"  # bit-identical on the CPU (see test_resume_continues_exactly)
    cfg = _mcddl_config(tiny_config)
    straight = start_run(cfg, tmp_path / "straight", log=lambda m: None)
    start_run(TrainConfig.from_dict(cfg.to_dict()), tmp_path / "split", stop_at=3, log=lambda m: None)
    resumed = resume_run(tmp_path / "split", log=lambda m: None)
    assert straight.finished and resumed.finished and resumed.step == 6

    rows = _log_rows(tmp_path / "straight")
    assert list(rows[0]) == ["step", "lr", "loss", "pixel", "hierarchical", "adversarial", "d_loss", "val_psnr",
                             "val_ssim", "elapsed_s"]
    # d_every=2: the discriminator trains on steps 1, 3, 5; other rows leave d_loss empty
    assert [bool(r["d_loss"]) for r in rows] == [True, False, True, False, True, False]
    assert rows[-1]["val_psnr"]

    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"
    for k, v in a["mcddl"]["discriminator"].items():
        assert torch.equal(v, b["mcddl"]["discriminator"][k]), f"discriminator.{k} differs after resume"
    assert a["mcddl"]["steps"] == b["mcddl"]["steps"] == 6
    assert _without_time(_log_rows(tmp_path / "straight")) == _without_time(_log_rows(tmp_path / "split"))


@pytest.mark.parametrize("change, message", [
    ({"arch": "derainlite"}, "gan mcddl trains PLNLIN"),
    ({"crop": 20}, "multiple of 8"),
    ({"gan": "wgan"}, "gan must be none or mcddl"),
])
def test_mcddl_config_mistakes_are_usage_errors(tiny_config, tmp_path, change, message):
    cfg = _mcddl_config(tiny_config)
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(UsageError, match=message):
        start_run(cfg, tmp_path / "run", log=lambda m: None)
