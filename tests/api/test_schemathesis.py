"""Schemathesis against /api/openapi.json of the running service: no 5xx, every answer as told.

`schemathesis run` with every check it has (no server error, status codes, content types,
headers and bodies as documented, valid bodies accepted, invalid ones refused, unsupported
methods, Allow headers, ignored auth, use after free, resources available after creation)
against the real app on each backend, with the owner's token and a shop's side by side.

The number of examples is bounded so a run stays within about a minute per backend on a busy
machine. The coverage phase (every boundary of every schema) and more examples are a
longer run: NUDGE_SCHEMATHESIS_PHASES=coverage,fuzzing,stateful NUDGE_SCHEMATHESIS_EXAMPLES=50.
The bodies that hold a segment definition (a recursive schema) are left out of the coverage
phase, which never ends on one; fuzzing and the stateful phase draw them.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.api import OPERATIONS

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXAMPLES = os.environ.get("NUDGE_SCHEMATHESIS_EXAMPLES", "3")
PHASES = os.environ.get("NUDGE_SCHEMATHESIS_PHASES", "fuzzing,stateful")
SEED = os.environ.get("NUDGE_SCHEMATHESIS_SEED", "20261201")
TIMEOUT = 600
# too_slow: a health check of the generator (the settings body is large), not of the API
CONFIG = """
suppress-health-check = ["too_slow"]

[phases.stateful]
max-steps = 4

[[operations]]
include-operation-id = ["save_segment", "preview_segment", "create_campaign"]
phases.coverage.enabled = false
"""


async def schemathesis(url: str, token: str, workdir: Path) -> tuple[int, str]:
    """Run `schemathesis run` with every check; return its exit code and its report."""
    (workdir / "schemathesis.toml").write_text(CONFIG)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(workdir / "schemathesis.toml"),
        "run",
        f"{url}/api/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        EXAMPLES,
        "--phases",
        PHASES,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--generation-database",
        "none",
        cwd=workdir,  # its cache stays out of the repository
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    return process.returncode or 0, output.decode("utf-8", "replace")


async def test_every_operation_answers_as_documented(world, tmp_path):
    """The owner's token and a shop's token, side by side against one service."""
    runs = []
    for who in ("owner", "own"):
        (tmp_path / who).mkdir()
        runs.append(schemathesis(world.pg.settings.public_base, world.tokens[who], tmp_path / who))
    for who, (code, report) in zip(("owner", "own"), await asyncio.gather(*runs), strict=True):
        assert code == 0, f"with the {who} token:\n{report[-12000:]}"
        assert f"Tested: {len(OPERATIONS)}" in report, report[-3000:]
