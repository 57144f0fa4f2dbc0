"""Write an image's SBOM: CycloneDX 1.6 JSON, validated against the schema.

    sbom.py --venv /opt/venv --manifest /opt/textless-stack/manifest.json > /opt/textless-stack/sbom.cdx.json

Runs at build time under the SBOM tool environment (env/locks/sbom.txt: cyclonedx-bom and its
cyclonedx-python-lib), never in the image's own environment. It covers:
- the Python environment: every installed distribution (pkg:pypi), with the dependencies it declares;
- the Debian packages of the runtime image (pkg:deb, from dpkg), and the CPython the base image built;
- our patched upstream sources: fairseq, textlesslib and hydra-core carry the commit (or stand-in) they were built
  from and the sha256 of their patch report, as a pedigree.
`cyclonedx-py environment` would do the first part, but it stops at omegaconf 2.0.6's metadata ("PyYAML
(>=5.1.*)" is not a valid specifier any more), so the library is used directly and such a requirement is recorded
by its name alone. Given SOURCE_DATE_EPOCH, the document is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import platform
import re
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from cyclonedx.model import ExternalReference, ExternalReferenceType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType, Patch, PatchClassification, Pedigree
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from packaging.requirements import InvalidRequirement, Requirement

PATCHED = {"fairseq": "fairseq", "textlesslib": "textlesslib", "hydra": "hydra-core"}  # patch report -> dist


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def python_components(site_packages: Path) -> tuple[dict[str, Component], dict[str, list[str]]]:
    components, requires = {}, {}
    for dist in sorted(md.distributions(path=[str(site_packages)]), key=lambda d: normalise(d.metadata["Name"])):
        name = normalise(dist.metadata["Name"])
        purl = PackageURL("pypi", name=name, version=dist.version)
        components[name] = Component(name=dist.metadata["Name"], version=dist.version, purl=purl, bom_ref=str(purl),
                                     type=ComponentType.LIBRARY)
        needed = []
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:  # omegaconf 2.0.6: "PyYAML (>=5.1.*)": its name is still certain
                needed.append(normalise(re.match(r"[A-Za-z0-9_.\-]+", line).group(0)))
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                needed.append(normalise(req.name))
        requires[name] = needed
    return components, requires


def debian_components() -> list[Component]:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"sbom: dpkg-query failed: {e}")
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    distro = f"{release.get('ID', 'debian')}-{release.get('VERSION_ID', '').strip(chr(34))}"
    found = []
    for line in sorted(out.splitlines()):
        status, name, version, arch = line.split("\t")
        if not status.startswith("ii"):  # removed, only its configuration left
            continue
        purl = PackageURL("deb", namespace="debian", name=name, version=version,
                          qualifiers={"arch": arch, "distro": distro})
        found.append(Component(name=name, version=version, purl=purl, bom_ref=str(purl), type=ComponentType.LIBRARY))
    return found


def annotate_patched(components: dict[str, Component], manifest: dict) -> None:
    """Where each patched upstream came from, and which patch report its files match."""
    for project, dist in PATCHED.items():
        component = components.get(dist)
        if component is None:
            continue
        source = manifest.get("sources", {}).get(project, {})
        report = manifest.get("patches", {}).get(project)
        props = []
        if source.get("commit"):
            props.append(Property(name="textless-stack:source-commit", value=source["commit"]))
        if source.get("standin"):
            props.append(Property(name="textless-stack:standin", value=str(source.get("package") or "true")))
        if report is not None:
            props += [Property(name="textless-stack:patch-report-sha256", value=digest(report)),
                      Property(name="textless-stack:patch-transforms-applied",
                               value=str(report.get("transforms_applied", 0) + report.get("transforms_already_applied", 0)))]
            component.pedigree = Pedigree(patches=[Patch(type=PatchClassification.UNOFFICIAL)],
                                          notes=f"patched at build time by textless-stack's patcher (env/patcher): "
                                                f"{report.get('files_changed', '?')} files; the patch report is in "
                                                "the image manifest (/opt/textless-stack/manifest.json)")
        if source.get("git") and source.get("commit"):
            component.external_references.add(ExternalReference(
                type=ExternalReferenceType.VCS, url=XsUri(f"{source['git']}#{source['commit']}")))
        for p in props:
            component.properties.add(p)


def build(venv: Path, manifest: dict, manifest_sha256: str) -> str:
    site = next(venv.glob("lib/python*/site-packages"))
    python, requires = python_components(site)
    annotate_patched(python, manifest)
    cpython = Component(name="cpython", version=platform.python_version(), type=ComponentType.APPLICATION,
                        purl=PackageURL("generic", name="cpython", version=platform.python_version()),
                        bom_ref=f"pkg:generic/cpython@{platform.python_version()}")
    debian = debian_components()
    ours_version = manifest.get("revision") or "unknown"
    ours = Component(name="textless-stack", version=ours_version, type=ComponentType.CONTAINER,
                     bom_ref="textless-stack-image",
                     properties=[Property(name="textless-stack:variant", value=(manifest.get("variant") or {}).get("name", "")),
                                 Property(name="textless-stack:manifest-sha256", value=manifest_sha256),
                                 Property(name="textless-stack:pins-sha256", value=digest(manifest.get("pins")))])
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    bom = Bom(components=[*python.values(), cpython, *debian],
              # the same inputs give the same document: its serial number derives from them
              serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"textless-stack:{manifest_sha256}"))
    bom.metadata.component = ours
    bom.metadata.timestamp = (datetime.fromtimestamp(int(epoch), tz=timezone.utc) if epoch
                              else datetime.now(tz=timezone.utc))
    for name, component in python.items():
        bom.register_dependency(component, [python[d] for d in requires[name] if d in python])
    bom.register_dependency(ours, [*python.values(), cpython, *debian])
    text = JsonV1Dot6(bom).output_as_string(indent=1)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        sys.exit(f"sbom: the document is not valid CycloneDX 1.6: {error}")
    return text


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, required=True)
    args = ap.parse_args(argv)
    raw = args.manifest.read_bytes()
    print(build(args.venv, json.loads(raw), hashlib.sha256(raw).hexdigest()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
