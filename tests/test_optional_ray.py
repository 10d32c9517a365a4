"""Ray is optional: nothing imports it unless asked, and asking without it installed is one line."""

from __future__ import annotations

import subprocess
import sys

NO_RAY = "import sys; sys.modules['ray'] = None; sys.modules['ray.serve'] = None; "


def test_importing_traitscope_does_not_import_ray():
    code = "import sys, traitscope.cli.commands, traitscope.serve, traitscope.sweep, traitscope.web.app; "
    code += "assert 'ray' not in sys.modules, 'ray was imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_asking_for_ray_without_it_is_one_line(tmp_path):
    launch = NO_RAY + "from traitscope.cli.app import main; sys.argv[0] = 'traitscope'; main()"
    for args in (["serve", "--replicas", "2", "--run-root", str(tmp_path)],
                 ["sweep", "--traits", "optimism", "--backend", "ray", "--run-root", str(tmp_path)]):  # fmt: skip
        r = subprocess.run([sys.executable, "-c", launch, *args], capture_output=True, text=True, timeout=120)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and "pip install 'traitscope[ray]'" in lines[0], r.stderr
