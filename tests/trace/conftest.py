"""The API tests' fixtures (a real service on tmp_path with the sim backend)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from cli_served import serve  # noqa: E402,F401
from service_fixtures import env, make_env  # noqa: E402,F401
