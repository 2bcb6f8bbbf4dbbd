"""Cross-checks the compose files, .env.example and the Dockerfile against each other and the built image.

The compose spec's schema accepts any paths and names; this catches what it cannot: a build argument the
Dockerfile does not declare, a mount that misses the image's volumes or config path, a ${VARIABLE} that
.env.example does not document (or the reverse), a GPU file that reserves no NVIDIA GPU.

    python compose_matches_image.py INSPECT_JSON     # the output of `buildah inspect --type image IMAGE`

Runs with the tools virtualenv of .ci/image-check.sh (ruamel.yaml comes with check-jsonschema).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "nst-bot"
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")


def service(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())["services"][SERVICE]


def problems(image: dict) -> list[str]:
    found = []
    dockerfile_args = set(re.findall(r"^ARG\s+([A-Z_][A-Z0-9_]*)", (ROOT / "Dockerfile").read_text(), re.M))
    base, gpu = service(ROOT / "docker-compose.yml"), service(ROOT / "docker-compose.gpu.yml")
    for name, spec in (("docker-compose.yml", base), ("docker-compose.gpu.yml", gpu)):
        unknown = set(spec.get("build", {}).get("args", {})) - dockerfile_args
        if unknown:
            found.append(f"{name}: build args the Dockerfile does not declare: {sorted(unknown)}")

    env = dict(item.split("=", 1) for item in image.get("Env") or [])
    mounts = {}
    for volume in base.get("volumes", []):
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode)
    config_dir = str(Path(env.get("NST_CONFIG", "/missing")).parent)
    if mounts.get(config_dir, (None, []))[1] != ["ro"]:
        found.append(f"the config folder {config_dir} (from the image's NST_CONFIG) is not mounted read-only")
    if base.get("environment", {}).get("NST_CONFIG", env.get("NST_CONFIG")) != env.get("NST_CONFIG"):
        found.append("compose and the image disagree on NST_CONFIG")
    named = {target for target, (source, _) in mounts.items() if not source.startswith((".", "/"))}
    if named != set(image.get("Volumes") or {}):
        found.append(f"named volumes at {sorted(named)}, but the image's VOLUMEs are {sorted(image.get('Volumes') or {})}")
    if env.get("NST_CACHE_DIR") not in named:
        found.append(f"the weights cache {env.get('NST_CACHE_DIR')} is not on a volume")

    devices = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    if not any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices):
        found.append("docker-compose.gpu.yml reserves no NVIDIA GPU")

    used = set()
    for path in sorted(ROOT.glob("docker-compose*.yml")):  # the scale files' variables are documented too
        used |= set(VARIABLE.findall(path.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    if used - documented:
        found.append(f".env.example does not document {sorted(used - documented)}")
    if documented - used:
        found.append(f".env.example documents {sorted(documented - used)}, which the compose files do not use")
    return found


def main() -> None:
    found = problems(json.loads(Path(sys.argv[1]).read_text())["Docker"]["config"])
    for problem in found:
        print(f"compose/image mismatch: {problem}")
    if found:
        sys.exit(1)
    print("compose files, .env.example, Dockerfile and image agree")


if __name__ == "__main__":
    main()
