"""Compare the distributions installed in this interpreter with requirements.lock.

    python scripts/lock_check.py            # exit 1 and list differences, if any
    python scripts/lock_check.py --extra    # print installed distributions the lock does not name

The project itself (mnv3-nas, installed editable) is the one distribution allowed beyond the lock.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
PROJECT = "mnv3-nas"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line of the lock."""
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = _PIN.match(text)
        if match is None:
            raise ValueError(f"{path}:{number}: not an exact pin 'name==version': {text!r}")
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def installed() -> dict[str, str]:
    """Distributions installed in this environment's site-packages.

    Only there, not everything on ``sys.path``: Ray puts its vendored copies of psutil and
    colorama (``ray/thirdparty_files``) on ``sys.path`` once it is imported.
    """
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions(path=paths) if d.metadata["Name"]}


def differences(lock: dict[str, str], have: dict[str, str]) -> list[str]:
    """One line per distribution that is missing, at another version, or not in the lock."""
    out = []
    for name, version in sorted(lock.items()):
        if name not in have:
            out.append(f"missing: {name}=={version}")
        elif have[name] != version:
            out.append(f"version: {name} is {have[name]}, the lock says {version}")
    out += [f"not in the lock: {name}=={have[name]}" for name in sorted(set(have) - set(lock) - {PROJECT})]
    return out


def main(argv: list[str]) -> int:
    lock, have = read_lock(), installed()
    if argv == ["--extra"]:
        print(" ".join(sorted(set(have) - set(lock) - {PROJECT})))
        return 0
    problems = differences(lock, have)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} difference(s) from {LOCK.name}: run bash scripts/install.sh", file=sys.stderr)
        return 1
    print(f"installed distributions match {LOCK.name} ({len(lock)} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
