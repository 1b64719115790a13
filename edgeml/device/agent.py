"""The on-device side of `edgeml deploy`: a standalone script (Python 3.9+, standard library only) that
`edgeml deploy` copies to the device and runs with the device's `python3`.

    python3 agent.py deploy   --dir DIR --bundle FILE --sha256 HEX     (then answers "commit" on stdin)
    python3 agent.py status   --dir DIR
    python3 agent.py rollback --dir DIR
    python3 agent.py bench    --dir DIR [--runs N] [--threads N]

Layout under DIR: `releases/<version>/` (bundle files, `venv/`, `.edgeml-ok` once installed and
smoke-tested), `current` and `previous` (relative symlinks into releases/), `staging/` (uploads),
`.lock`. Nothing a deploy does is visible through `current` until the final symlink rename, and that
rename only happens after the controller answers "commit": if the connection drops before, the new
release is removed and the previous one stays active.

Output: one JSON object per line on stdout ({"event": "stage"|"ready"|"result"|"error", ...}).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

# Copies of edgeml_runtime.formats' names (this script runs alone on the device; a test checks they match).
BUNDLE_MANIFEST = "edgeml-bundle.json"
SCHEMA = "edgeml.bundle/1"
OK_MARKER = ".edgeml-ok"
RELEASES_DIR = "releases"
CURRENT_LINK = "current"
PREVIOUS_LINK = "previous"
STAGING_DIR = "staging"
KEEP_RELEASES = 3  # besides current and previous, the newest installed releases kept for --rollback
COMMIT_TIMEOUT_S = 600
LOCK_TIMEOUT_S = 120
STALE_STAGING_S = 3600

# Run in the release's venv: load every model and run it once on zeros, outputs must be finite.
SMOKE_TEST = r"""
import json, sys
import numpy as np
import edgeml_runtime as er
for path in sys.argv[1:]:
    model = er.load(path)
    feeds = {}
    for spec in model.inputs:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        dtype = "float32" if spec.quantization is not None else spec.dtype
        feeds[spec.name] = np.zeros(shape, dtype=dtype)
    outputs = model.run(feeds)
    for name, value in outputs.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise SystemExit(f"{path}: output {name} is not finite")
    print(json.dumps({"model": path, "backend": model.backend,
                      "outputs": {k: list(np.shape(v)) for k, v in outputs.items()}}))
"""


class Failure(Exception):
    """A step failed; `stage` says which (verify, install, smoke, activate, rollback, bench, ...)."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


class Interrupted(Exception):
    pass


def emit(event: str, **fields) -> None:
    try:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):  # the controller is gone; carry on cleaning up
        pass


def stage(name: str, message: str) -> None:
    emit("stage", stage=name, message=message)


def sha256_file(path: Path) -> str:  # a copy of edgeml_runtime.files's: this script runs alone on the device
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- layout


class Layout:
    def __init__(self, root: str):
        self.root = Path(os.path.expanduser(root)).absolute()
        self.releases = self.root / RELEASES_DIR
        self.current = self.root / CURRENT_LINK
        self.previous = self.root / PREVIOUS_LINK
        self.staging = self.root / STAGING_DIR

    def target(self, link: Path):
        """The release version a link points at, or None."""
        if not link.is_symlink():
            return None
        return Path(os.readlink(link)).name

    def release(self, version: str) -> Path:
        return self.releases / version

    def is_complete(self, version) -> bool:
        return version is not None and (self.release(version) / OK_MARKER).is_file()

    def point(self, link: Path, version: str) -> None:
        """Atomically make `link` point at releases/<version> (symlink to a temporary name, rename)."""
        temporary = link.with_name(f".{link.name}.tmp-{os.getpid()}")
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        os.symlink(f"{RELEASES_DIR}/{version}", temporary)
        os.replace(temporary, link)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Lock:
    """One deploy/rollback at a time per directory (flock; released when the process dies)."""

    def __init__(self, layout: Layout):
        self.path = layout.root / ".lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "w")
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failure("lock", f"another edgeml deploy is running in {self.path.parent}") from None
                time.sleep(0.5)

    def __exit__(self, *exc):
        self.handle.close()


# ----------------------------------------------------------------------------- bundle checking


def read_manifest(tar: tarfile.TarFile, bundle: Path):
    first = tar.next()
    if first is None or not first.isreg() or PurePosixPath(first.name).name != BUNDLE_MANIFEST:
        raise Failure("verify", f"{bundle.name}: not an edgeml bundle ({BUNDLE_MANIFEST} must come first)")
    top = check_member_name(first.name)[0]
    manifest = json.loads(tar.extractfile(first).read())
    if manifest.get("schema") != SCHEMA:
        raise Failure("verify", f"unsupported bundle schema {manifest.get('schema')!r}; expected {SCHEMA}")
    return manifest, top, first


def check_member_name(name: str):
    """(top directory, path inside it) of a safe member name; refuse anything else."""
    if name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name):
        raise Failure("verify", f"refusing member '{name}': absolute path or unsafe characters")
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or any(part in ("..", ".", "") for part in parts) or "/./" in f"/{name}/":
        raise Failure("verify", f"refusing member '{name}': '..', '.' or not inside the bundle's directory")
    return parts[0], "/".join(parts[1:])


def extract_verified(bundle: Path, expected_sha256: str, destination: Path) -> dict:
    """Check the bundle's sha256, then every member against the manifest (regular files only, safe
    names, listed, right size and sha256) while writing it under `destination`. Returns the manifest."""
    actual = sha256_file(bundle)
    if actual != expected_sha256:
        raise Failure("verify", f"bundle sha256 mismatch after upload (expected {expected_sha256[:12]}, "
                                f"got {actual[:12]}): the copy was corrupted in transit")
    with tarfile.open(bundle, "r:gz") as tar:
        manifest, top, manifest_member = read_manifest(tar, bundle)
        expected = {entry["path"]: entry for entry in manifest["files"]}
        seen = set()
        destination.mkdir(parents=True)
        for member in tar:
            if member is manifest_member:  # iteration starts again at the first member
                continue
            if not member.isreg():
                raise Failure("verify", f"refusing member '{member.name}': links, devices and directories "
                                        "are not allowed in a bundle")
            member_top, relative = check_member_name(member.name)
            if member_top != top or relative not in expected or relative in seen:
                raise Failure("verify", f"refusing member '{member.name}': not listed in the bundle manifest")
            entry = expected[relative]
            if member.size != entry["bytes"]:
                raise Failure("verify", f"{relative}: {member.size} bytes, manifest says {entry['bytes']}")
            seen.add(relative)
            _write_checked(tar, member, destination / relative, entry)
        missing = sorted(set(expected) - seen)
        if missing:
            raise Failure("verify", f"bundle is missing {len(missing)} listed file(s): {', '.join(missing[:3])}")
    (destination / BUNDLE_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _write_checked(tar, member, path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    with open(path, "xb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != entry["sha256"]:
        raise Failure("verify", f"sha256 mismatch for {entry['path']}: the bundle is damaged or was tampered with")
    os.chmod(path, 0o755 if entry["path"].endswith(".sh") else 0o644)


def check_compatible(manifest: dict) -> None:
    python = "{}.{}".format(*sys.version_info[:2])
    if manifest.get("offline") and manifest.get("python") != python:
        raise Failure("verify", f"the device's python3 is {python} but the bundle's wheels are for Python "
                                f"{manifest.get('python')}; rebuild with `edgeml bundle ... --python {python}`")
    arch = manifest.get("device", {}).get("arch")
    machine = platform.machine()
    if manifest.get("offline") and arch and machine != arch and not (arch == "armv7l" and machine == "armv6l"):
        raise Failure("verify", f"the device is {machine} but the bundle was built for {arch} "
                                f"(profile {manifest['device'].get('name')}); rebuild for the right --device")


# ------------------------------------------------------------------------------- install, smoke


def install(release: Path) -> None:
    log = release / "install.log"
    env = _clean_env()
    env["PYTHON"] = sys.executable  # the interpreter whose version was just checked builds the venv
    with open(log, "wb") as out:
        done = subprocess.run(["sh", str(release / "install.sh"), str(release / "venv")], cwd=release,
                              stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise Failure("install", f"install.sh failed (exit {done.returncode}): {_tail(log)}")


def smoke_test(release: Path) -> list:
    manifest = json.loads((release / BUNDLE_MANIFEST).read_text())
    models = [str(release / model["path"]) for model in manifest["models"]]
    done = subprocess.run([str(release / "venv" / "bin" / "python"), "-c", SMOKE_TEST, *models],
                          capture_output=True, text=True, env=_clean_env())
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise Failure("smoke", f"smoke inference failed: {lines[-1]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


SERVICE_UNIT = "edgeml-serve.service"
UNIT_SCRIPT = (
    "import sys\n"
    "from edgeml_runtime.serve.systemd import deployment_unit\n"
    "sys.stdout.write(deployment_unit(sys.argv[1], ['--http', '127.0.0.1:8080']))\n"
)


def write_service_unit(layout: Layout, release: Path) -> Path:
    """A systemd unit serving this deployment over HTTP (through `current`, so it survives deploys).

    Installing it needs root, which a deploy does not assume: the unit is left in the release for
    `sudo cp .../edgeml-serve.service /etc/systemd/system/ && sudo systemctl enable --now edgeml-serve`.
    """
    done = subprocess.run([str(release / "venv" / "bin" / "python"), "-c", UNIT_SCRIPT, str(layout.root)],
                          capture_output=True, text=True, env=_clean_env())
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise Failure("smoke", f"the runtime cannot write its systemd unit: {lines[-1]}")
    unit = release / SERVICE_UNIT
    unit.write_text(done.stdout)
    return unit


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _tail(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-3:]) if lines else "no output"


def wait_for_commit() -> None:
    emit("ready")
    readable, _, _ = select.select([sys.stdin], [], [], COMMIT_TIMEOUT_S)
    answer = sys.stdin.readline().strip() if readable else ""
    if answer != "commit":
        raise Interrupted("the controller disconnected before activation")


# ------------------------------------------------------------------------------------ commands


def deploy(layout: Layout, bundle: Path, expected_sha256: str) -> dict:
    with Lock(layout):
        clean_staging(layout, keep=bundle.parent)
        stage("verify", "checking sha256 of the bundle and every file")
        extracted = bundle.parent / "extract"
        manifest = extract_verified(bundle, expected_sha256, extracted)
        check_compatible(manifest)
        version = manifest["version"]
        current, previous = layout.target(layout.current), layout.target(layout.previous)
        release = layout.release(version)
        reuse = layout.is_complete(version) and _same_bundle(release, manifest)
        if version == current and reuse:
            return {"action": "unchanged", "version": version, "previous": previous}
        if not reuse:
            if release.exists():
                if version in (current, previous):
                    raise Failure("verify", f"release {version} is on the device with different files; "
                                            "build the bundle with a new --version")
                shutil.rmtree(release)  # an unused or half-installed release of the same version
            layout.releases.mkdir(parents=True, exist_ok=True)
            os.replace(extracted, release)
        try:
            if not reuse:
                stage("install", f"creating releases/{version}/venv from the bundle's wheels")
                install(release)
            stage("smoke", "running each model once in the new venv")
            smoke = smoke_test(release)
            unit = write_service_unit(layout, release)
            if not reuse:
                (release / OK_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
            wait_for_commit()
        except BaseException:
            if not reuse:
                shutil.rmtree(release, ignore_errors=True)
            raise
        stage("activate", f"switching current to releases/{version}")
        layout.point(layout.current, version)
        if current and current != version:
            layout.point(layout.previous, current)
        prune(layout)
        return {"action": "activated", "version": version, "previous": current, "smoke": smoke,
                "service_unit": str(unit)}


def _same_bundle(release: Path, manifest: dict) -> bool:
    try:
        return json.loads((release / BUNDLE_MANIFEST).read_text()) == manifest
    except (OSError, ValueError):
        return False


def rollback(layout: Layout) -> dict:
    with Lock(layout):
        current, previous = layout.target(layout.current), layout.target(layout.previous)
        if not layout.is_complete(previous) or previous == current:
            raise Failure("rollback", f"no previous release to roll back to in {layout.root}")
        stage("smoke", f"checking releases/{previous} still runs")
        smoke_test(layout.release(previous))
        layout.point(layout.current, previous)
        if current:
            layout.point(layout.previous, current)
        return {"action": "rolled back", "version": previous, "previous": current}


def status(layout: Layout) -> dict:
    current, previous = layout.target(layout.current), layout.target(layout.previous)
    releases = []
    if layout.releases.is_dir():
        for path in sorted(layout.releases.iterdir()):
            info = {"version": path.name, "complete": layout.is_complete(path.name),
                    "active": path.name == current}
            try:
                manifest = json.loads((path / BUNDLE_MANIFEST).read_text())
                info.update(name=manifest.get("name"), created=manifest.get("created"),
                            device=manifest.get("device", {}).get("name"),
                            models=[m["path"] for m in manifest.get("models", [])])
            except (OSError, ValueError):
                pass
            releases.append(info)
    active = next((r for r in releases if r["active"]), {})
    return {"action": "status", "dir": str(layout.root), "version": current, "previous": previous,
            "current_ok": layout.is_complete(current), "name": active.get("name"), "models": active.get("models"),
            "releases": releases, "hostname": socket.gethostname(), "arch": platform.machine(),
            "python": platform.python_version()}


def bench(layout: Layout, runs, threads) -> dict:
    current = layout.target(layout.current)
    if not layout.is_complete(current):
        raise Failure("bench", f"nothing deployed in {layout.root}; deploy a bundle first")
    release = layout.release(current)
    manifest = json.loads((release / BUNDLE_MANIFEST).read_text())
    results = []
    for model in manifest["models"]:
        command = [str(release / "venv" / "bin" / "python"), "-m", "edgeml_runtime", "bench",
                   str(release / model["path"]), "--json"]
        command += ["--runs", str(runs)] if runs else []
        command += ["--threads", str(threads)] if threads else []
        stage("bench", f"benchmarking {model['path']}")
        done = subprocess.run(command, capture_output=True, text=True, env=_clean_env())
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise Failure("bench", f"{model['path']}: {lines[-1]}")
        try:
            parsed = json.loads(done.stdout)
        except ValueError:
            raise Failure("bench", f"{model['path']}: bench printed no JSON") from None
        results += parsed if isinstance(parsed, list) else [parsed]
    return {"action": "bench", "version": current, "results": results}


def clean_staging(layout: Layout, keep: Path) -> None:
    """Remove uploads left by killed deploys (old enough not to be another deploy's upload)."""
    if not layout.staging.is_dir():
        return
    for path in layout.staging.iterdir():
        if path != keep and time.time() - path.stat().st_mtime > STALE_STAGING_S:
            shutil.rmtree(path, ignore_errors=True)


def prune(layout: Layout) -> None:
    """Keep current, previous and the KEEP_RELEASES newest installed releases; drop half-installed ones."""
    in_use = {layout.target(layout.current), layout.target(layout.previous)}
    complete = sorted((p for p in layout.releases.iterdir() if (p / OK_MARKER).is_file()),
                      key=lambda p: (p / OK_MARKER).stat().st_mtime, reverse=True)
    keep = in_use | {p.name for p in complete[:KEEP_RELEASES]}
    for path in layout.releases.iterdir():
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="edgeml-device")
    parser.add_argument("command", choices=["deploy", "status", "rollback", "bench"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--bundle")
    parser.add_argument("--sha256")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    layout = Layout(args.dir)

    def hang_up(signum, _frame):
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGHUP, hang_up)
    signal.signal(signal.SIGTERM, hang_up)
    try:
        if args.command == "deploy":
            result = deploy(layout, Path(args.bundle), args.sha256)
        elif args.command == "rollback":
            result = rollback(layout)
        elif args.command == "bench":
            result = bench(layout, args.runs, args.threads)
        else:
            result = status(layout)
    except Failure as failure:
        emit("error", stage=failure.stage, message=str(failure))
        return 1
    except Interrupted as interrupted:
        emit("error", stage="interrupted", message=f"deploy interrupted ({interrupted}); previous release kept")
        return 1
    except (OSError, ValueError, KeyError, tarfile.TarError) as error:
        emit("error", stage="device", message=f"{type(error).__name__}: {error}")
        return 1
    finally:
        if args.command == "deploy" and args.bundle:
            shutil.rmtree(Path(args.bundle).parent, ignore_errors=True)
    emit("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
