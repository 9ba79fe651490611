"""Helpers of the fault tests (tests/e2e/test_faults_*.py): the tiny config written to a file,
generated files, running an entry point in-process, and a snapshot of a folder to prove that
nothing in it changed."""
from __future__ import annotations

from pathlib import Path

from tests.helpers.tiny import tiny_config, write_yaml

REPO = Path(__file__).resolve().parents[2]


def write_tiny_config(root: Path, name: str = "tiny.yaml", changes: dict | None = None) -> Path:
    """The tiny Video-FocalNet config (DATA.ROOT root/syn, OUTPUT root/run) plus ``changes``."""
    return write_yaml(root / name, tiny_config("focal", root, changes))


def make_synthetic(root: Path) -> Path:
    """The synthetic set of the tiny config, generated once into root/syn."""
    from datasets.synthetic import ensure_synthetic, synthetic_settings
    ensure_synthetic(str(root / "syn"), synthetic_settings(8, 4, 4, 32, 0))
    return root / "syn"


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_main(main, argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of an entry point's ``main(argv)`` run in this process."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line of a failed entry point (asserts there is nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: "), err
    return lines[0]
