"""Bad input gets a clear refusal before any work (issue 14 "Bad input", issue 13 part 7).

Every probe feeds the command its own bad input and asserts: exit status 2 (argparse and our
own refusals alike), a message that names the option and what is allowed, no traceback, and
nothing left behind (no ``--out`` folder, no ``log.txt``). docs/FAULTS.md "Bad input" lists
the probes and what each gets.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from fixtures_data import fetch_fixture
from trlearner.pipeline.catalog import DATASETS, MAX_WAYS, REGRESSION, VECTOR_INPUT
from trlearner.pipeline.check import ConfigError, check_config
from trlearner.pipeline.schema import schema
from trlearner.cli import main
from trlearner.data.registry import override
from trlearner.run.config import dataset_kind, resolve_config
from trlearner.run.train import train

REPO = Path(__file__).resolve().parents[1]
SINUSOID = ["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5"]
QUICK = ["--iterations", "2", "--test-tasks", "3", "--no-progress", "--device", "cpu"]


def cli(argv, capsys) -> tuple[int, str]:
    """``trlearner ARGV`` in this process: (exit status, stderr); argparse's exit is caught."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def refused(capsys, out: Path, argv, *words) -> str:
    """Run ``trlearner train ARGV --out OUT``; assert a clean refusal naming ``words``."""
    rc, err = cli(["train", *QUICK, *argv, "--out", str(out)], capsys)  # argv wins over QUICK
    assert rc == 2, err
    assert "Traceback" not in err and "diverged" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def nothing_written(out: Path) -> bool:
    return not out.exists()


# --------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("flag", ["--lam", "--inner-lr", "--outer-lr", "--reg-strength", "--test-lr"])
@pytest.mark.parametrize("value", ["nan", "inf", "NaN", "-inf"])
def test_non_finite_numbers_are_refused_by_the_cli(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    extra = ["--trlearner"] if flag == "--lam" else []
    refused(capsys, out, [*SINUSOID, *extra, f"{flag}={value}"], flag, "finite")
    assert nothing_written(out)


@pytest.mark.parametrize("key", ["inner_lr", "test_lr", "outer_lr", "reg_strength"])
def test_non_finite_numbers_are_refused_by_resolve_config(key):
    with pytest.raises(ValueError, match=f"--{key.replace('_', '-')} nan: allowed: a finite number"):
        resolve_config(dataset="sinusoid", algorithm="maml", shots=5, **{key: float("nan")})


def test_non_finite_lam_is_refused_by_resolve_config():
    from trlearner.method.relation import TRConfig

    with pytest.raises(ValueError, match="--lam inf: allowed: a finite number >= 0"):
        resolve_config(dataset="sinusoid", algorithm="maml", shots=5, trlearner=TRConfig(lam=float("inf")))


# --------------------------------------------------------------------------- ways, shots, algorithm

@pytest.mark.parametrize("argv, words", [
    (["--dataset", "omniglot", "--algorithm", "maml", "--shots", "1", "--ways", "1"], ["--ways 1", "--ways >= 2"]),
    ([*SINUSOID, "--ways", "5"], ["--ways 5", "regression", "no --ways"]),
    (["--dataset", "omniglot", "--algorithm", "maml", "--shots", "1"], ["--ways", "classification"]),
    (["--dataset", "sinusoid", "--algorithm", "protonet", "--shots", "5"],
     ["--algorithm protonet", "regression", "allowed: --algorithm maml, anil, metasgd, tnet"]),
    ([*SINUSOID, "--backbone", "conv4"], ["--backbone conv4", "allowed: --backbone mlp"]),
    ([*SINUSOID, "--backbone", "resnet12"], ["--backbone resnet12", "allowed: --backbone mlp"]),
    (["--dataset", "omniglot", "--ways", "5", "--algorithm", "maml", "--shots", "1", "--backbone", "mlp"],
     ["--backbone mlp", "allowed: --backbone conv4 or resnet12"]),
    (["--dataset", "metadataset_dtd", "--ways", "5", "--algorithm", "maml", "--shots", "1"],
     ["--ways 5", "variable number of ways", "allowed: no --ways"]),
])
def test_impossible_settings_are_refused(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    refused(capsys, out, argv, *words)
    assert nothing_written(out)


@pytest.mark.parametrize("argv, words", [
    ([*SINUSOID, "--trlearner", "--meta-batch", "1"], ["--meta-batch 1", "0/0", "allowed: --meta-batch >= 2"]),
    (["--dataset", "omniglot", "--ways", "5", "--algorithm", "maml", "--shots", "1", "--trlearner",
      "--regularizer", "meta_aug", "--reg-strength", "1"], ["--regularizer meta_aug", "--trlearner", "allowed:"]),
])
def test_impossible_trlearner_settings_are_refused(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    refused(capsys, out, argv, *words)
    assert nothing_written(out)


def test_meta_aug_stays_allowed_where_it_is_correct(tmp_path):
    """The refusal is exactly TRLearner x meta_aug x classification: meta_aug on regression with
    TRLearner (an offset, labels untouched) and meta_aug alone still run."""
    from trlearner.method.relation import TRConfig

    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, regularizer="meta_aug", reg_strength=0.5,
                         trlearner=TRConfig(), meta_batch=2)
    assert cfg.regularizer == "meta_aug"
    assert resolve_config(dataset="omniglot", ways=5, algorithm="maml", shots=1, regularizer="meta_aug",
                          reg_strength=1.0).trlearner is None


# --------------------------------------------------------------------------- the data's real limits

@pytest.fixture(scope="module")
def omniglot_small(tmp_path_factory):
    """The omniglot_small fixture fetched (20 images per class; train/val/test 32/8/16 classes)."""
    root, spec, facts = fetch_fixture("omniglot_small", tmp_path_factory.mktemp("omni"))
    assert facts["classes"] == {"train": 32, "val": 8, "test": 16}
    with override(spec):
        yield root


OMNI = ["--dataset", "omniglot_small", "--algorithm", "maml"]


def test_more_ways_than_classes_is_refused(omniglot_small, tmp_path, capsys):
    out = tmp_path / "run"
    refused(capsys, out, [*OMNI, "--ways", "5000", "--shots", "1", "--data-root", str(omniglot_small)],
            "--ways 5000", "are 32", "allowed: --ways 2..16")  # train 32, test 16 classes
    assert nothing_written(out)


def test_more_shots_than_images_is_refused(omniglot_small, tmp_path, capsys):
    out = tmp_path / "run"
    # 19 shots + the protocol's training queries per class > 20, the images of every class
    q = resolve_config(dataset="omniglot_small", algorithm="maml", ways=5, shots=19).train_queries or 15
    refused(capsys, out, [*OMNI, "--ways", "5", "--shots", "19", "--data-root", str(omniglot_small)],
            "--shots 19", f"needs {19 + q} images", "at most 20", "allowed: --shots + --train-queries <= 20")
    assert nothing_written(out)
    refused(capsys, out, [*OMNI, "--ways", "5", "--shots", "5", "--train-queries", "5", "--test-queries", "16",
                          "--data-root", str(omniglot_small)], "--test-queries", "<= 20")
    assert nothing_written(out)


def test_the_limits_let_a_possible_setting_through(omniglot_small, tmp_path, capsys):
    """The boundary: 16-way (all test classes) with 5 shots + 15 queries = 20 images runs."""
    out = tmp_path / "run"
    rc, err = cli(["train", *OMNI, "--ways", "16", "--shots", "5", "--data-root", str(omniglot_small),
                   "--filters", "4", "--test-steps", "1", "--curve-steps", "1", "--meta-batch", "2", *QUICK,
                   "--out", str(out)], capsys)
    assert rc == 0, err
    assert json.loads((out / "metrics.json").read_text())["ways"] == 16


def test_a_dataset_not_fetched_names_the_fetch_command_and_the_drop_folder(tmp_path, capsys):
    out, root = tmp_path / "run", tmp_path / "empty"
    err = refused(capsys, out, ["--dataset", "omniglot", "--ways", "5", "--algorithm", "maml", "--shots", "1",
                                "--data-root", str(root)],
                  "'omniglot' is not fetched", f"python -m trlearner data --data-root {root} fetch omniglot",
                  str(root / "manual" / "omniglot"), "images_background.zip")
    assert nothing_written(out) and not root.exists()
    assert "TRLEARNER_MIRROR" in err


# --------------------------------------------------------------------------- --out, checkpoint, device

def test_out_being_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "file.txt"
    out.write_text("mine\n")
    refused(capsys, out, SINUSOID, f"--out {out} is a file", "allowed: a folder")
    assert out.read_text() == "mine\n"
    under = out / "run"
    refused(capsys, under, SINUSOID, f"{out} is a file")


def _make_read_only(folder: Path) -> bool:
    """chmod 555; as root (who writes anyway) the immutable attribute too. False if impossible."""
    folder.chmod(0o555)
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return True
    probe.unlink()
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


def test_out_read_only_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _make_read_only(ro):
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    try:
        refused(capsys, ro / "run", SINUSOID, f"{ro} is read-only", "allowed: a folder this user can write to")
        refused(capsys, ro, SINUSOID, "is read-only")
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
        ro.chmod(0o755)


def test_a_checkpoint_of_other_settings_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = cli(["train", *SINUSOID, *QUICK, "--out", str(out)], capsys)
    assert rc == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    refused(capsys, out, ["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "10"],
            f"--out {out} holds checkpoint.pt of a run with other settings", "allowed: the same settings")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # log.txt, metrics.json and the checkpoint untouched


def test_device_cuda_without_a_gpu_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    refused(capsys, out, [*SINUSOID, "--device", "cuda"], "--device cuda", "no CUDA device",
            "allowed: --device cpu")
    assert nothing_written(out)
    refused(capsys, out, [*SINUSOID, "--device", "gpu"], "--device 'gpu'", "allowed: auto, cpu, cuda")
    assert nothing_written(out)


# --------------------------------------------------------------------------- metrics.json

def test_metrics_json_is_standard_json_with_the_reason_for_null(tmp_path):
    """One test task: the sample sd (and so the CI) is undefined. Written as null, with why."""
    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=2, test_tasks=1,
                         device="cpu")
    m = train(cfg, tmp_path, progress=False)
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["ci95"] is None and data["curve"]["ci95"] == [None] * len(data["curve"]["steps"])
    assert "1 test task" in data["nulls"]["ci95"] and "curve.ci95" in data["nulls"]
    assert math.isfinite(data["mean"]) and m["ci95"] is None


def test_metrics_sanitiser_names_non_finite_test_values():
    from trlearner.run.results import metrics_json

    clean = metrics_json({"n_tasks": 3, "mean": float("nan"), "ci95": float("nan"),
                          "per_task": [1.0, float("nan"), float("inf")]})
    assert clean["mean"] is None and clean["per_task"] == [1.0, None, None]
    assert clean["nulls"]["per_task"].startswith("2 value(s) were inf, nan")
    json.dumps(clean, allow_nan=False)


# --------------------------------------------------------------------------- the pipeline config

def _tiny() -> dict:
    return yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())


@pytest.mark.parametrize("sweep, words", [
    ({"iterations": [0]}, ["ablations.lam.sweep.iterations.0", "allowed: >= 1"]),
    ({"lam": ["abc"]}, ["ablations.lam.sweep.lam.0", "'abc'", "allowed: number"]),
    ({"heads": [0]}, ["ablations.lam.sweep.heads.0", "allowed: >= 1"]),
    ({"sampler": ["diversee"]}, ["ablations.lam.sweep.sampler.0", "'diversee'", "'diverse', 'random'"]),
    ({"lam": [0.1, -0.5]}, ["ablations.lam.sweep.lam.1", "-0.5", "allowed: >= 0"]),
    ({"lam": [float("nan")]}, ["ablations.lam.sweep.lam.0", "nan", "finite"]),
    ({"inner_lr": [float("inf")]}, ["ablations.lam.sweep.inner_lr.0", "inf", "finite"]),
    ({"meta_batch": [1, 4]}, ["ablations.lam", "meta_batch=1", "trlearner", "allowed: meta_batch >= 2"]),
])
def test_bad_ablation_sweeps_are_rejected_naming_the_key(sweep, words):
    cfg = _tiny()
    cfg["ablations"]["lam"]["sweep"] = sweep
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("mutate, words", [
    (lambda c: c["experiments"]["regression"]["protocol"].update(inner_lr=float("nan")),
     ["experiments.regression.protocol.inner_lr", "nan", "finite"]),
    (lambda c: c["experiments"]["regression"]["protocol"].update(outer_lr=float("inf")),
     ["experiments.regression.protocol.outer_lr", "inf", "finite"]),
    (lambda c: c.update(trlearner={"lam": float("nan")}), ["trlearner.lam", "nan", "finite"]),
    (lambda c: c["experiments"]["regression"]["protocol"].update(meta_batch=1),
     ["experiments.regression", "meta_batch=1", "allowed: meta_batch >= 2"]),
    (lambda c: c["experiments"]["regression"].update(algorithms=["protonet"]),
     ["experiments.regression", "protonet", "regression dataset 'sinusoid'"]),
    (lambda c: c["experiments"]["regression"]["protocol"].update(backbone="conv4"),
     ["experiments.regression", "backbone='conv4'", "allowed: mlp"]),
    (lambda c: c["experiments"].update(omni={"datasets": ["omniglot"], "algorithms": ["maml"],
                                             "settings": [{"ways": 5000, "shots": 1}], "seeds": [0]}),
     ["experiments.omni", "ways=5000", "allowed: ways <= 1692"]),
    (lambda c: c["experiments"].update(omni={"datasets": ["omniglot"], "algorithms": ["maml"],
                                             "settings": [{"ways": 5, "shots": 1}], "seeds": [0],
                                             "protocol": {"train_queries": 20}}),
     ["experiments.omni", "train_queries=20", "<= 20"]),
])
def test_bad_experiment_settings_are_rejected_naming_the_key(mutate, words):
    cfg = _tiny()
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_every_sweep_key_has_a_value_schema():
    abl = schema()["definitions"]["ablation"]["properties"]["sweep"]
    assert set(abl["properties"]) == set(abl["propertyNames"]["enum"])


def test_static_limits_match_the_shipped_splits_and_the_train_checks():
    from trlearner.data.registry import split_file

    test = len(split_file("omniglot_vinyals_test.txt"))
    assert MAX_WAYS["omniglot"] == min(len(split_file("omniglot_vinyals_train.txt")), test) == 1692
    ravi = split_file("miniimagenet_ravi.json")
    assert MAX_WAYS["miniimagenet"] == min(len(ravi["train"]), len(ravi["test"])) == 20
    assert MAX_WAYS["cub"] == sum(i % 4 == 3 for i in range(200))
    assert MAX_WAYS["places"] == sum(i % 4 == 3 for i in range(365))
    for ds in DATASETS:  # the pipeline's kind lists say what train's checks say
        task, inputs = dataset_kind(ds)
        assert (ds in REGRESSION) == (task == "regression"), ds
        assert (ds in VECTOR_INPUT) == (inputs == "vector"), ds


def test_real_omniglot_zips_are_found_through_trlearner_mirror(tmp_path, monkeypatch):
    """Tests that need the real zips look in TRLEARNER_MIRROR's local folders, then ../shared."""
    from fixtures_data import SHARED, _real_omniglot

    (tmp_path / "omniglot_small").mkdir()
    (tmp_path / "omniglot_small" / "images_background_small1.zip").write_bytes(b"PK")
    monkeypatch.setenv("TRLEARNER_MIRROR", f"https://example.org/m, {tmp_path / 'none'},{tmp_path}")
    assert _real_omniglot() == (tmp_path / "omniglot_small").resolve()
    monkeypatch.setenv("TRLEARNER_MIRROR", str(tmp_path / "none"))
    assert _real_omniglot() == SHARED / "data" / "omniglot"


def test_omniglot_small_static_limit_matches_the_real_zips():
    import zipfile

    from fixtures_data import SHARED_OMNIGLOT  # TRLEARNER_MIRROR, else ../shared/data/omniglot

    zips = sorted(SHARED_OMNIGLOT.glob("images_background_small*.zip"))
    if len(zips) != 2:
        pytest.skip(f"the real Omniglot zips are not at {SHARED_OMNIGLOT} (set TRLEARNER_MIRROR to their folder)")
    from trlearner.data.registry import split_file

    chars = {"/".join(n.split("/")[1:3]) for z in zips for n in zipfile.ZipFile(z).namelist() if n.endswith(".png")}
    split = split_file("omniglot_small_alphabets.json")
    count = {s: 4 * sum(c.split("/")[0] in split[s] for c in chars) for s in ("train", "test")}
    assert MAX_WAYS["omniglot_small"] == min(count.values())


def _pipeline_check(config: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "trlearner.pipeline", "check", "--config", str(config)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_yaml_syntax_error_gives_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: tiny\nexperiments:\n  regression:\n    datasets: [sinusoid\n    seeds: [0]\n")
    r = _pipeline_check(bad)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"YAML syntax error at {bad}:line 5, column 10" in r.stderr, r.stderr
    r = _pipeline_check(tmp_path / "absent.yaml")
    assert r.returncode == 2 and "cannot read the config file" in r.stderr and "Traceback" not in r.stderr


def test_a_bad_sweep_through_the_pipeline_cli(tmp_path):
    cfg = _tiny()
    cfg["ablations"]["lam"]["sweep"] = {"lam": [-1.0]}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    r = _pipeline_check(bad)
    assert r.returncode == 2 and "ablations.lam.sweep.lam.0" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_snakemake_configfile_yaml_error_stops_before_any_job(tmp_path):
    """Snakemake parses --configfile itself, before the Snakefile runs, and its message has no
    line or column (Snakemake 9.27); `python -m trlearner.pipeline check --config` gives them
    (docs/FAULTS.md). What must hold here: it stops, says why, and plans nothing."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: tiny\nexperiments:\n  regression:\n    datasets: [sinusoid\n    seeds: [0]\n")
    snakemake = Path(sys.executable).parent / "snakemake"
    r = subprocess.run([str(snakemake), "-n", "--configfile", str(bad)], capture_output=True, text=True,
                       cwd=REPO, timeout=300)
    text = r.stdout + r.stderr
    assert r.returncode != 0 and "not valid JSON or YAML" in text, text
    assert "Job stats" not in text and "Traceback" not in text


# --------------------------------------------------------------------------- report

def test_report_of_a_missing_or_empty_results_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "reports"
    rc, err = cli(["report", "--results", str(tmp_path / "nonexistent"), "--out", str(out)], capsys)
    assert rc == 2 and "does not exist" in err and "--results" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "some_run").mkdir()
    rc, err = cli(["report", "--results", str(empty), "--out", str(out)], capsys)
    assert rc == 2 and "holds no metrics.json" in err
    assert not out.exists()
