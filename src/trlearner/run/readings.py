"""Named readings of a protocol: the settings one source (a paper, a codebase) gives a benchmark.

The TRLearner paper reran its baselines in a setting it does not fully state, and its one known
baseline number (MAML, sinusoid 5-shot: MSE 0.593) is the anchor of its operating point
(docs/CALIBRATION.md). Each reading here is one documented answer to "which setting?": a
named set of ``trlearner train`` settings, each with the file and line it comes from. A run
with ``reading=NAME`` (``trlearner train --reading NAME``, config ``protocol: {reading: NAME}``)
starts from the dataset's protocol (:func:`trlearner.run.protocols.paper_protocol`), takes the
reading's settings over it, and then any setting given explicitly; the reading is the run's
reference protocol, so a reading with fewer iterations than the MAML paper is not "reduced".

A reading changes only settings the code has; what a source does that the code cannot express
(another data range, another loss) is named in its ``gaps``, never silently approximated.

Example:
    >>> reading_settings("torch_init", "sinusoid")
    {'init': 'torch'}
    >>> reading_settings("asr_lab_script", "sinusoid")["meta_batch"]
    32
    >>> reading_settings("torch_init", "omniglot")
    Traceback (most recent call last):
    ...
    ValueError: reading 'torch_init' is defined for sinusoid; allowed for 'omniglot': none
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reading:
    """One source's protocol for some datasets.

    Arguments:
        name: identifier (``[a-z0-9_]+``), as in configs and ``--reading``.
        title: what the reading is, in a few words.
        datasets: the datasets it is defined for.
        settings: ``trlearner train`` settings (RunConfig field -> value) over the dataset's
            protocol.
        sources: setting -> where it comes from (repository, file and line, or paper section).
        gaps: what the source does that the code does not express, and why it matters or not.
    """

    name: str
    title: str
    datasets: tuple[str, ...]
    settings: dict
    sources: dict = field(default_factory=dict)
    gaps: tuple[str, ...] = ()


_SINUSOID = ("sinusoid",)
_ASR = "WangJingyao07/Adaptive-Sampler@ca6080d"
_FINN = "cbfinn/maml@a7f45f1"
_TDL = "tristandeleu/pytorch-maml@4410427"
_TORCH_INIT = "nn.Linear.reset_parameters: W, b ~ U(+-1/sqrt(fan_in)) (torch/nn/modules/linear.py l.117-128)"
_ASR_SETTINGS = dict(iterations=15_000, meta_batch=32, inner_steps=1, inner_lr=0.001, test_steps=1,
                     test_lr=0.001, init="torch", train_queries=15, test_queries=15, test_tasks=1024)
_ASR_SOURCES = {
    "iterations": f"{_ASR} scripts/MAML/Train/train_maml_sinusoid_all_samplers.sh l.4 (--num-epochs 150) x "
                  "src/main.py l.79-84 (--num-batches 100)",
    "meta_batch": f"{_ASR} scripts/MAML/Train/train_maml_sinusoid_all_samplers.sh l.4 (--batch-size 32)",
    "inner_lr": f"{_ASR} scripts/MAML/Train/train_maml_sinusoid_all_samplers.sh l.4 (--step-size 0.001)",
    "outer_lr": f"{_ASR} scripts/MAML/Train/train_maml_sinusoid_all_samplers.sh l.4 (--meta-lr 0.001)",
    "inner_steps": f"{_ASR} src/main.py l.76-78 (--num-steps default 1)",
    "test_steps": f"{_ASR} src/main.py l.160-161 (--num-steps default at test)",
    "test_lr": f"{_ASR} src/main.py l.155-175, trainer.py l.264-272 (the training config's step size "
               "wins over the test script's --step-size 0.4)",
    "init": f"{_ASR} src/maml/model.py l.95-99 (MetaLinear = nn.Linear); {_TORCH_INIT}",
    "train_queries": f"{_ASR} src/main.py l.57-60 (--num-shots-test default 15), src/utils.py l.93-95, 347",
    "test_queries": f"{_ASR} src/main.py l.57-60, src/utils.py l.347",
    "test_tasks": f"{_ASR} src/maml/trainer.py l.244-251, 277-281 (1,024 test task ids)",
    "network": f"{_ASR} src/utils.py l.362, src/maml/model.py l.67-106 (MLP 1-40-40-1 ReLU, as ours)",
    "data": f"{_ASR} src/datasets/sinusoid.py l.53-55, 107-109 (A U[0.1,5], phase U[0,pi], x U[-5,5], as ours)",
}
_ASR_GAPS = (
    "training tasks: the loader forces shuffle=False and restarts at task 0 each epoch with re-created "
    "workers (task_sampler/uniform_sampler.py l.90-92, trainer.py l.132-137), in effect a fixed pool of "
    "tasks (inferred from the code, not run); ours draws a fresh task every episode",
    "model selection: the checkpoint kept is the best validation MSE over the 150 epochs "
    "(trainer.py l.170-198); ours evaluates the last iterate",
    "test tasks: drawn from an unseeded RandomState per run (torchmeta MetaDataset.seed()); ours are "
    "the fixed episodes 0..N-1, the same for every run",
)
_MAML_PAPER = {
    "all": f"trlearner.run.protocols.REGRESSION: the MAML paper, section 5.1 (alpha = 0.01, K support "
           f"and K query points, meta-batch 25, Adam 1e-3) and {_FINN} main.py l.4 (70,000 iterations), "
           f"maml.py l.168-177 (truncated normal std 0.01, zero biases); 100 test queries and 600 test "
           f"tasks: this project's evaluation (docs/BASELINES.md)",
}

#: Every reading, by name, in the order of precedence of docs/CALIBRATION.md ("Selection rule"):
#: the TRLearner authors' own lab code first, then the MAML paper, the MAML code as it runs, and
#: the PyTorch-default variants. The calibration preset (config/calibration.yaml) runs each.
READINGS: dict[str, Reading] = {r.name: r for r in (
    Reading(
        "asr_lab_script", "the authors' lab code (ASr), MAML sinusoid as its training script states it",
        _SINUSOID, dict(_ASR_SETTINGS), dict(_ASR_SOURCES), _ASR_GAPS),
    Reading(
        "asr_lab", "the authors' lab code (ASr) as it runs for the plain-MAML sampler: meta-batch 1",
        _SINUSOID, dict(_ASR_SETTINGS, meta_batch=1),
        dict(_ASR_SOURCES, meta_batch=f"{_ASR} src/main.py l.138, 227-228 (batch_size = 1 for sampler 0, "
                                      f"'uniform'; the forked Task-Diversity code did so only for its "
                                      f"single-batch sampler)"),
        _ASR_GAPS + ("TRLearner needs >= 2 tasks per meta-batch: no TRLearner verdict at this reading",)),
    Reading(
        "maml_paper", "the MAML paper's sinusoid protocol (this project's default): alpha 0.01, Finn's init",
        _SINUSOID, {}, dict(_MAML_PAPER)),
    Reading(
        "maml_code", "the MAML code as its sinusoid command runs: alpha 0.001 (the flag's default), K test queries",
        _SINUSOID, dict(inner_lr=0.001, test_lr=0.001, test_queries=5),
        {"inner_lr": f"{_FINN} main.py l.52 (update_lr default 1e-3; the sinusoid command main.py l.4 "
                     f"does not set it), used at train and test: maml.py l.22, 94, 105",
         "test_lr": f"{_FINN} maml.py l.22, 94, 105",
         "test_queries": f"{_FINN} main.py l.232-238, 185-188 (the 2K-point generator at test: K queries)",
         "all others": "as maml_paper"},
        ("normalisation: the flag's default is batch norm on the MLP (main.py l.56); the sinusoid command "
         "sets --norm=None (main.py l.4), as ours",)),
    Reading(
        "torch_init", "as maml_paper, with PyTorch's default nn.Linear initialisation",
        _SINUSOID, {"init": "torch"}, {"init": _TORCH_INIT, "all others": "as maml_paper"}),
    Reading(
        "pytorch_maml", "torchmeta's author's MAML (pytorch-maml): alpha 0.1, 5,000 iterations, PyTorch init",
        _SINUSOID, dict(iterations=5_000, meta_batch=25, inner_steps=1, inner_lr=0.1, test_steps=1, test_lr=0.1,
                        init="torch", train_queries=15, test_queries=15, test_tasks=2500),
        {"iterations": f"{_TDL} train.py l.130-133 (50 epochs x 100 batches)",
         "meta_batch": f"{_TDL} train.py l.125-126", "inner_steps": f"{_TDL} train.py l.127-129",
         "inner_lr": f"{_TDL} train.py l.134-136", "outer_lr": f"{_TDL} train.py l.54, 140-142 (Adam 1e-3)",
         "init": f"{_TDL} maml/model.py l.86-99 (MetaLinear); {_TORCH_INIT}",
         "train_queries": f"{_TDL} train.py l.115-117", "test_queries": f"{_TDL} maml/datasets.py l.27-41",
         "test_tasks": f"{_TDL} test.py l.17-20, 34-47 (100 batches of 25)",
         "test_steps": f"{_TDL} test.py l.34-47 (the training steps and step size)",
         "test_lr": f"{_TDL} test.py l.34-47"},
        ("model selection: the best validation epoch is kept (train.py l.78-91); ours evaluates the last "
         "iterate",)),
)}

#: Sources read and not run, with the reason (docs/CALIBRATION.md lists them with the readings).
NOT_RUN = {
    "paper_text": "the TRLearner paper states no regression hyper-parameter that we could find (arXiv "
                  "2409.08474 v2/v3 as stored): nothing to run",
    "learn2learn": "learnables/learn2learn examples/maml_sine.py: 10-shot only (l.38), a 1-32-32-1 network "
                   "(l.22-34, not expressible here) and no test evaluation at all",
    "mtnet_lab": f"{_ASR} src/mtnet/experiments/sine.sh: sinusoids with a frequency drawn from U[0.8, 1.2] "
                 "(src/mtnet/data_generator.py l.32, 170, 179), another task family than the paper's",
}


def reading_settings(name: str, dataset: str) -> dict:
    """The settings reading ``name`` puts over ``dataset``'s protocol (a fresh dict).

    Raises:
        ValueError: an unknown reading, or one not defined for ``dataset`` (naming what is).
    """
    if name not in READINGS:
        raise ValueError(f"unknown reading {name!r}; allowed: {', '.join(READINGS)}")
    reading = READINGS[name]
    if dataset not in reading.datasets:
        allowed = ", ".join(n for n, r in READINGS.items() if dataset in r.datasets) or "none"
        raise ValueError(f"reading {name!r} is defined for {', '.join(reading.datasets)}; "
                         f"allowed for {dataset!r}: {allowed}")
    return dict(reading.settings)
