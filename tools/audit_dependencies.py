"""Audit the installed dependencies with pip-audit; fail on any known vulnerability.

When no vulnerability database can be reached (a closed network), pip-audit
can only skip every package; that is reported plainly as "not audited"
rather than passed off as a clean audit.
"""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> int:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--skip-editable",
            "--format",
            "json",
            "--progress-spinner",
            "off",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print("dependency audit: NOT AUDITED, pip-audit could not run:", result.stderr.strip()[-500:])
        return 0
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        print(
            f"dependency audit: {dependency['name']} {dependency['version']} has known vulnerabilities: {ids}"
        )
    if vulnerable:
        return 1
    if not audited:
        print("dependency audit: NOT AUDITED, no vulnerability database is reachable from this machine")
        return 0
    print(f"dependency audit: {len(audited)} packages audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
