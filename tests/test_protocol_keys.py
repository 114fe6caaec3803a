"""The protocol keys a config may set are one list (pipeline.PROTOCOL_KEYS): the config schema
accepts exactly those, and every one reaches `trlearner train` as an option it knows."""

import subprocess
import sys

import yaml

from trlearner.pipeline import core as pipeline


def test_schema_protocol_properties_are_the_pipeline_keys():
    schema = yaml.safe_load(pipeline.SCHEMA.read_text())
    assert set(schema["definitions"]["protocol"]["properties"]) == set(pipeline.PROTOCOL_KEYS)


def test_every_protocol_key_is_a_train_option():
    out = subprocess.run([sys.executable, "-m", "trlearner", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    missing = [k for k in pipeline.PROTOCOL_KEYS if "--" + k.replace("_", "-") not in out]
    assert not missing, f"protocol keys without a train option: {missing}"


def test_false_for_a_negatable_key_is_passed_on():
    cfg = yaml.safe_load(open("config/tiny.yaml"))
    cfg["experiments"]["regression"]["protocol"].update(adapt_bn=False, init="torch")
    args = pipeline.check_config(cfg).table_runs[0].train_args("tiny", "cpu", "data")
    assert "--no-adapt-bn" in args and args[args.index("--init") + 1] == "torch"
