"""tools/_cli.py: what every entry point does with an error (exit code, one line, traceback)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datasets.annotations import AnnotationError
from engine.checkpoint import CheckpointError
from engine.config import ConfigError
from engine.trainer import NonFiniteLossError
from tools._cli import UsageError, make_main, new_parser, run_cli

REPO = Path(__file__).resolve().parents[3]


def _raise(err: BaseException):
    def job():
        raise err
    return job


@pytest.mark.parametrize("err, code", [
    (ConfigError("key DATA.ROOT: missing"), 2),
    (AnnotationError("train.csv: line 3: bad label"), 2),
    (CheckpointError("x.pth is truncated"), 2),
    (FileNotFoundError("--checkpoint nope.pth does not exist"), 2),
    (PermissionError("OUTPUT directory /x is not writable"), 2),
    (UsageError("--model: unknown model 'resnet'"), 2),
    (NonFiniteLossError("non-finite loss (nan)"), 3),
    (KeyboardInterrupt(), 130),
])
def test_expected_failures_become_one_line_and_an_exit_code(err, code, capsys, monkeypatch):
    monkeypatch.delenv("VIDEO_DEBUG", raising=False)
    assert run_cli(_raise(err)) == code
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert stderr.startswith("interrupted" if code == 130 else f"error: {err}")


def test_debug_flag_or_environment_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv("VIDEO_DEBUG", raising=False)
    assert run_cli(_raise(ConfigError("key X: bad")), debug=True) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("VIDEO_DEBUG", "1")
    assert run_cli(_raise(ConfigError("key X: bad"))) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("error: key X: bad")
    assert new_parser("x").parse_args(["--debug"]).debug is True


def test_bugs_keep_their_traceback_and_the_job_code_passes_through():
    with pytest.raises(ZeroDivisionError):
        run_cli(lambda: 1 / 0)
    assert run_cli(lambda: None) == 0 and run_cli(lambda: 1) == 1


def test_make_main_parses_then_runs_under_the_mapping(capsys):
    def parse_args(argv=None):
        parser = new_parser("toy")
        parser.add_argument("--fail", action="store_true")
        return parser.parse_args(argv)

    def run(args):
        if args.fail:
            raise ConfigError("key TOY: bad")
        return 0

    main = make_main(parse_args, run)
    assert main([]) == 0
    assert main(["--fail"]) == 2 and capsys.readouterr().err == "error: key TOY: bad\n"


def test_entry_point_reports_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL:\n  TYPE: no_such_model\n")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "--cfg", str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "no_such_model" in proc.stderr
    assert "Traceback" not in proc.stderr
