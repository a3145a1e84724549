"""Print pip constraints pinning every declared floor (``name>=X`` -> ``name==X``) of hf-infer.

Runtime dependencies and the extras named on the command line are pinned at their floors, so the
lowest-versions venv of ``.ci/run`` tests exactly what ``pyproject.toml`` promises.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
for requirement in requirements:
    match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+?)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", requirement.strip())
    if match:
        print(f"{match.group(1)}=={match.group(3)}")
