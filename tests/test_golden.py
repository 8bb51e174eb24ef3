"""Every command's text and JSON output on every committed fixture slice is
unchanged since the golden set was recorded (tests/golden/record.py).

Oracle: the outputs of the code before the redesign of issue 11, recorded on
slices that do not change between builds.  A deliberate change of output is
re-recorded with ``python3 tests/golden/record.py --only FIXTURE`` and named
in the commit message.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))
import record  # noqa: E402

FIXTURES = record.fixtures()


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_command_output_matches_the_golden_set(name, capsys):
    core, truth = FIXTURES[name]
    changed = record.record(core, truth, os.path.join(record.HERE, name), check=True)
    assert changed == 0, capsys.readouterr().out[-6000:]


@pytest.mark.real
def test_demo_output_matches_the_golden_set(capsys):
    assert record.demo(check=True) == 0, capsys.readouterr().out
