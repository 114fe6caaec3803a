"""At most one stale checkpoint per run folder (issue 25 item 3): every parameter change used to
leave checkpoint.stale.pt and checkpoint.prev.stale.pt beside the live checkpoints, and they
piled up; now the newest checkpoint of other settings replaces the one kept before."""

from __future__ import annotations

import torch

from trlearner.pipeline.jobs import STALE_CHECKPOINT, remove_stale_checkpoint
from trlearner.run.cli import parse_args, run_config
from trlearner.run.results import config_hash


def _cfg(out, iterations: int):
    return run_config(parse_args(["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5",
                                  "--iterations", str(iterations), "--out", str(out)]))


def _ckpt(path, cfg, tag: str):
    torch.save({"config_hash": config_hash(cfg.identity()), "tag": tag}, path)


def _tag(path) -> str:
    return torch.load(path, weights_only=True)["tag"]


def test_one_stale_checkpoint_is_kept_the_newest(tmp_path, capsys):
    old, mid, new = (_cfg(tmp_path, n) for n in (10, 20, 30))
    _ckpt(tmp_path / "checkpoint.pt", old, "old")
    _ckpt(tmp_path / "checkpoint.prev.pt", old, "old-prev")
    (tmp_path / "checkpoint.prev.stale.pt").write_bytes(b"left by an older version")

    remove_stale_checkpoint(tmp_path, mid)  # the settings changed: old -> mid
    assert sorted(p.name for p in tmp_path.iterdir()) == [STALE_CHECKPOINT]
    assert _tag(tmp_path / STALE_CHECKPOINT) == "old"  # the newest of the stale ones
    assert "deleted (one stale checkpoint is kept" in capsys.readouterr().err

    _ckpt(tmp_path / "checkpoint.pt", mid, "mid")  # mid trains and is changed again: mid -> new
    _ckpt(tmp_path / "checkpoint.prev.pt", mid, "mid-prev")
    remove_stale_checkpoint(tmp_path, new)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STALE_CHECKPOINT]
    assert _tag(tmp_path / STALE_CHECKPOINT) == "mid"
    assert "replacing the older stale checkpoint" in capsys.readouterr().err

    _ckpt(tmp_path / "checkpoint.pt", new, "new")  # an interrupted job of the same settings: kept
    remove_stale_checkpoint(tmp_path, new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", STALE_CHECKPOINT]
    assert _tag(tmp_path / "checkpoint.pt") == "new" and _tag(tmp_path / STALE_CHECKPOINT) == "mid"
