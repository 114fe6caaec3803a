"""The protocol keys a config may set are one list, the config schema's
(``trlearner.pipeline.matrix.PROTOCOL_KEYS`` is read from it), and every one reaches
`trlearner train` as an option it knows and a run setting it records."""

import subprocess
import sys

import yaml

from trlearner.pipeline.check import check_config
from trlearner.pipeline.matrix import PROTOCOL_KEYS
from trlearner.pipeline.schema import SCHEMA


def test_the_pipeline_keys_are_the_schema_protocol_properties():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert tuple(schema["definitions"]["protocol"]["properties"]) == PROTOCOL_KEYS


def test_every_protocol_key_is_a_train_option():
    out = subprocess.run([sys.executable, "-m", "trlearner", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    missing = [k for k in PROTOCOL_KEYS if "--" + k.replace("_", "-") not in out]
    assert not missing, f"protocol keys without a train option: {missing}"


def test_every_protocol_key_is_a_run_setting():
    from trlearner.run.cli import RUN_KEYS

    assert set(PROTOCOL_KEYS) <= set(RUN_KEYS)


def test_false_for_a_negatable_key_is_passed_on():
    cfg = yaml.safe_load(open("config/tiny.yaml"))
    cfg["experiments"]["regression"]["protocol"].update(adapt_bn=False, init="torch")
    args = check_config(cfg).table_runs[0].train_args("tiny", "cpu", "data")
    assert "--no-adapt-bn" in args and args[args.index("--init") + 1] == "torch"
