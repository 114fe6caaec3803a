"""The pipeline's side of DVC: ``params.yaml`` (one ``fetch@<dataset>`` stage per registry
dataset, generated from the data registry) and the ``dvc.lock`` entry of a dataset (a
Snakemake param of its manifest job, so that a real data change reruns its training); and what
a DVC user runs (docs/DATA.md, "DVC"; ``python -m trlearner.pipeline.dvc``):

- ``data-status`` (also ``python -m trlearner data status``): ``dvc status`` of the datasets in
  this checkout, one line for the others (:func:`data_status`);
- ``plots``: ``dvc plots show`` with Vega inlined, readable offline (``make plots``; :func:`plots`);
- ``published-summary``: the committed ``results/published/<preset>/summary.json`` that
  ``dvc metrics show|diff`` compare a run with (:func:`published_summary`).

Example::

    >>> "omniglot_small" in registry_datasets() and "metadataset" not in registry_datasets()
    True
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trlearner.data.dvc_status import data_status, run_dvc  # noqa: F401  (data-status lives in the data layer)
from trlearner.data.registry import get, names


def registry_datasets() -> list[str]:
    """Every dataset of the data registry that has data of its own (a DVC stage each): all
    entries except collections (``metadataset``, whose members are datasets themselves)."""
    return [n for n in names() if get(n).kind != "collection"]


def dvc_datasets(params_path: str = "params.yaml") -> list[str]:
    """Datasets with a DVC stage ``fetch@<dataset>`` (``datasets`` in params.yaml, dvc.yaml's foreach)."""
    p = Path(params_path)
    if not (p.exists() and p.with_name("dvc.yaml").exists()):
        return []
    from trlearner.util.yamlsafe import safe_load_file

    return list((safe_load_file(p) or {}).get("datasets") or [])


PARAMS_HEADER = """\
# Generated from the data registry (src/trlearner/data/registry.yaml) by
#   python -m trlearner.pipeline dvc-params
# Do not edit the list by hand: tests/test_dvc_all_datasets.py fails when it differs from the
# registry. dvc.yaml has one stage fetch@<dataset> per entry (docs/DATA.md, "DVC"). dvc.lock pins
# the datasets fetched so far; a dataset never fetched has no dvc.lock entry (`dvc status` lists
# it as "deleted"), so pull or repro by stage name: `dvc pull fetch@<dataset>`.
"""


def dvc_params_text() -> str:
    """The text of ``params.yaml``: :data:`PARAMS_HEADER` and every registry dataset."""
    return PARAMS_HEADER + "datasets:\n" + "".join(f"  - {n}\n" for n in registry_datasets())


def dvc_params(path: str = "params.yaml", check: bool = False) -> int:
    """Write ``params.yaml`` from the registry (``check``: only compare; 1 when it differs)."""
    p, want = Path(path), dvc_params_text()
    if p.exists() and p.read_text() == want:
        return 0
    if check:
        have = set(dvc_datasets(path)) if p.exists() else set()
        print(f"{path} is out of date with the data registry: missing {sorted(set(registry_datasets()) - have)}, "
              f"extra {sorted(have - set(registry_datasets()))}; run `python -m trlearner.pipeline dvc-params`",
              file=sys.stderr)
        return 1
    p.write_text(want)
    print(f"{path}: {len(registry_datasets())} datasets", file=sys.stderr)
    return 0


def dvc_lock_entry(dataset: str, lock_path: str = "dvc.lock") -> str:
    """The ``dvc.lock`` entry of ``fetch@<dataset>`` as a short hash ("" when absent): a
    Snakemake param, so a real data change (new lock entry) reruns the manifest and training,
    while a re-pull of the same data does not."""
    p = Path(lock_path)
    if not p.exists():
        return ""
    import hashlib

    from trlearner.util.yamlsafe import safe_load_file

    stages = (safe_load_file(p) or {}).get("stages", {})
    entry = stages.get(f"fetch@{dataset}")
    if entry is None:
        return ""
    outs = entry.get("outs", entry)
    return hashlib.sha256(json.dumps(outs, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# What a DVC user runs


#: Vega, Vega-Lite and Vega-Embed, in the order they load: what ``dvc plots show`` takes from a CDN.
VEGA_SCRIPTS = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")


def vega_scripts_dir() -> Path:
    """The folder holding :data:`VEGA_SCRIPTS`: Snakemake ships them for its reports
    (``snakemake/assets/data/``: Vega 5.21, Vega-Lite 5.2, the versions DVC's HTML names).
    Raises ``FileNotFoundError`` naming where it looked."""
    import importlib.util

    spec = importlib.util.find_spec("snakemake")
    tried = []
    for base in ([Path(p) / "assets" / "data" for p in spec.submodule_search_locations] if spec else []):
        if all((base / f).is_file() for f in VEGA_SCRIPTS):
            return base
        tried.append(str(base))
    raise FileNotFoundError("the Vega scripts (" + ", ".join(VEGA_SCRIPTS) + ") were not found "
                            f"(looked in: {', '.join(tried) or 'no snakemake package'}); install the pipeline "
                            "extra: pip install -e '.[pipeline]'")


def offline_plots_template(path: str | Path) -> Path:
    """Write the HTML template for ``dvc plots show --html-template``: DVC's page with Vega,
    Vega-Lite and Vega-Embed inlined instead of loaded from cdn.jsdelivr.net (no ``{scripts}``
    placeholder, so DVC adds no CDN tag), so the page draws without a network."""
    base = vega_scripts_dir()
    scripts = "\n".join(f"<script type=\"text/javascript\">\n/* {f} (from {base}) */\n"
                        f"{(base / f).read_text(encoding='utf8')}\n</script>" for f in VEGA_SCRIPTS)
    # DVC's divs call vegaEmbed(el, spec): draw as SVG (crisp; its marks are elements of the page)
    scripts += ("\n<script type=\"text/javascript\">\nvar vegaEmbed = (function (embed) {\n"
                "  return function (el, spec, opt) { return embed(el, spec, Object.assign({renderer: 'svg'}, opt)); };\n"
                "})(window.vegaEmbed);\n</script>")
    page = ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n{refresh_tag}\n<title>DVC Plot</title>\n"
            f"{scripts}\n<style>\ntable {{ border-spacing: 15px; }}\n</style>\n</head>\n<body>\n"
            "{plot_divs}\n</body>\n</html>\n")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf8")
    return out


def plots(out_dir: str | Path = "dvc_plots", template: str | Path = "build/dvc_plots_offline.html",
          repo: str | Path = ".", extra: list[str] | None = None) -> int:
    """``dvc plots show`` into ``out_dir/index.html`` with the offline template (:func:`offline_plots_template`)."""
    tpl = offline_plots_template(Path(repo) / template)
    out = run_dvc(["plots", "show", "--html-template", str(tpl.resolve()), "-o", str(Path(out_dir).resolve()),
                    *(extra or [])], cwd=repo)
    sys.stdout.write(out.stdout)
    sys.stderr.write(out.stderr)
    return out.returncode


def published_summary(published: str | Path = "results/published", presets: list[str] | None = None) -> list[Path]:
    """Write ``<published>/<preset>/summary.json`` (committed, beside the records): the report's
    metrics file rendered from the preset's published records, as ``make published`` renders it
    (``trlearner.pipeline report --results <preset>/runs [--expected <preset>/expected.json]
    --relative-to .``). dvc.yaml lists it under ``metrics:``, so ``dvc metrics show`` puts a run's
    numbers beside the published ones and ``dvc metrics diff`` shows what a new publication or a
    local run changes (docs/DATA.md, "Compare a run with the published results")."""
    import shutil
    import subprocess
    import tempfile

    root = Path(published)
    folders = [root / p for p in presets] if presets else sorted(d for d in root.iterdir() if (d / "runs").is_dir())
    written = []
    for d in folders:
        if not (d / "runs").is_dir():
            raise FileNotFoundError(f"{d}/runs: no published records (python -m trlearner.pipeline publish)")
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "trlearner.pipeline", "report", "--results", str(d / "runs"),
                   "--out", tmp, "--relative-to", "."]
            if (d / "expected.json").is_file():
                cmd[6:6] = ["--expected", str(d / "expected.json")]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"rendering {d}: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
            shutil.copyfile(Path(tmp) / "summary.json", d / "summary.json")
        written.append(d / "summary.json")
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m trlearner.pipeline.dvc data-status | plots | published-summary``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m trlearner.pipeline.dvc", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("data-status", help="dvc status of the datasets in this checkout; one line for the others")
    st.add_argument("--repo", default=".")
    pl = sub.add_parser("plots", help="dvc plots show with Vega inlined (readable offline)")
    pl.add_argument("--out", default="dvc_plots", help="output folder (index.html); default dvc_plots")
    pl.add_argument("--template", default="build/dvc_plots_offline.html",
                    help="where to write the offline HTML template (default build/dvc_plots_offline.html)")
    pl.add_argument("--repo", default=".")
    pl.add_argument("dvc_args", nargs="*", help="more arguments for dvc plots show (targets, --targets ...)")
    ps = sub.add_parser("published-summary", help="write results/published/<preset>/summary.json from the records")
    ps.add_argument("--published", default="results/published")
    ps.add_argument("preset", nargs="*", help="presets (default: every folder of --published with runs/)")
    args = p.parse_args(argv)
    if args.cmd == "data-status":
        rc, text = data_status(args.repo)
        print(text)
        return rc
    if args.cmd == "plots":
        try:
            return plots(args.out, args.template, args.repo, args.dvc_args)
        except FileNotFoundError as exc:
            print(f"plots: error: {exc}", file=sys.stderr)
            return 2
    try:
        for f in published_summary(args.published, args.preset or None):
            print(f"wrote {f}")
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"published-summary: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
