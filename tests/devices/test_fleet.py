"""`edgeml deploy --inventory` and `--export-ansible` with the real ansible-playbook against three real sshd
instances on 127.0.0.1 (different ports, different edgeml_dir, and three ways of naming the device's Python),
deploying real bundles (numpy and onnxruntime wheels installed offline on each "device").

Device states are made once per module by real rollouts: "v1" (`edgeml deploy v1 --inventory`) and "v2" (v1,
then v2 by the exported playbook run with ansible-playbook directly). Tests that change devices work on
copies of those states (hard links: the agent only adds and removes files and symlinks), so they do not
depend on each other or on their order."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.devices.test_device_deploy import _rewrite_bundle
from tests.support.cli import command, edgeml
from tests.support.local_servers import ServerFailed, SshServer, ToolMissing, free_port
from tests.support.marks import unavailable

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

HOSTS = ("dev-a", "dev-b", "dev-c")


class Fleet:
    """Three sshd servers (one per "device") and one ssh config (-F) that reaches all of them."""

    def __init__(self, root: Path, servers, python: str):
        self.root, self.servers, self.python = root, servers, python
        logins = [server.login() for server in servers]
        self.ssh_config = root / "fleet.ssh_config"
        identities = "".join(f"  IdentityFile {login.identity}\n" for login in logins)
        known = " ".join(str(server.known_hosts) for server in servers)
        self.ssh_config.write_text(
            "Host *\n" + identities + "  IdentitiesOnly yes\n  IdentityAgent none\n"
            f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n  LogLevel ERROR\n")
        self.logins = dict(zip(HOSTS, logins))

    def host_vars(self, dirs: dict) -> dict:
        """Each device its own port and edgeml_dir; the device's Python named three ways: edgeml_python
        (dev-a), nothing, so `python3` through the login's PATH, a pyenv shim here (dev-b), and the
        inventory's ansible_python_interpreter (dev-c)."""
        hosts = {}
        for name, server in zip(HOSTS, self.servers):
            hosts[name] = {"ansible_host": "127.0.0.1", "ansible_port": server.port, "ansible_user": server.user,
                           "edgeml_dir": str(dirs[name])}
        hosts["dev-a"]["edgeml_python"] = self.python
        hosts["dev-c"]["ansible_python_interpreter"] = self.python
        return hosts

    def inventory(self, path: Path, dirs: dict, *, down: bool = False, ssh_args: bool = False) -> Path:
        """A YAML inventory (.yml) or an INI one (.ini): groups canary (dev-a) and rest (dev-b, dev-c), and
        with `down` a host nothing listens for. `ssh_args`: the -F config as ansible_ssh_common_args."""
        hosts = self.host_vars(dirs)
        if down:
            hosts["dev-down"] = {"ansible_host": "127.0.0.1", "ansible_port": free_port(),
                                 "edgeml_dir": str(self.root / "down")}
        groups = {"canary": ["dev-a"], "rest": [h for h in hosts if h != "dev-a"]}
        common = {"ansible_ssh_common_args": f"-F {self.ssh_config}"} if ssh_args else {}
        if path.suffix == ".ini":
            lines = []
            for group, members in groups.items():
                lines.append(f"[{group}]")
                lines += [" ".join([name, *(f"{k}={shlex.quote(str(v))}" for k, v in hosts[name].items())])
                          for name in members]
            lines += ["[all:vars]", *(f"{k}={shlex.quote(v)}" for k, v in common.items())]
            path.write_text("\n".join(lines) + "\n")
        else:
            children = {group: {"hosts": {name: hosts[name] for name in members}} for group, members in groups.items()}
            path.write_text(json.dumps({"all": {"vars": common, "children": children}}, indent=2))  # JSON is YAML
        return path

    def ssh(self) -> list:
        return ["-F", str(self.ssh_config)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, device_python):
    pytest.importorskip("yaml")
    try:
        import ansible  # noqa: F401
    except ImportError:
        unavailable("ansible-core is not installed: pip install 'edgeml[fleet]'")
    root = tmp_path_factory.mktemp("fleet")
    servers = []
    try:
        for name in HOSTS:
            (root / name).mkdir()
            servers.append(SshServer(root / name))
            servers[-1].start()
    except ToolMissing as missing:
        unavailable(str(missing))
    except ServerFailed as failure:
        pytest.fail(str(failure))
    login = servers[0].login()
    python = login.run("python3 -c 'import sys; print(sys.executable)'", check=True).stdout.strip()
    yield Fleet(root, servers, python)
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def states(fleet, bundles, tmp_path_factory):
    """{"v1": dirs, "v2": dirs, "v1 run": CompletedProcess, "v2 run": CompletedProcess}: device directories
    (host -> edgeml_dir) made by a v1 rollout through `edgeml deploy --inventory` and then v2 through the
    exported playbook run by ansible-playbook itself."""
    root = tmp_path_factory.mktemp("fleet-states")
    made = {"v1": {host: root / "v1" / host / "edgeml" for host in HOSTS}}
    inventory = fleet.inventory(root / "v1.yml", made["v1"])
    made["v1 run"] = edgeml("deploy", bundles["v1"], "--inventory", inventory, *fleet.ssh(), "--json", check_exit=0)
    made["v2"] = copy_states(made["v1"], root / "v2")
    exported = root / "exported"
    edgeml("deploy", "--export-ansible", exported, check_exit=0)
    inventory = fleet.inventory(root / "v2.ini", made["v2"], ssh_args=True)
    made["v2 run"] = subprocess.run([*ansible_playbook(), "-i", str(inventory), str(exported / "site.yml"),
                                     "-e", f"bundle={bundles['v2']}"], capture_output=True, text=True, timeout=900)
    return made


def ansible_playbook() -> list:
    return [sys.executable, "-m", "ansible", "playbook"]


def copy_states(dirs: dict, root: Path) -> dict:
    copies = {}
    for host, directory in dirs.items():
        copies[host] = root / host / "edgeml"
        shutil.copytree(directory, copies[host], symlinks=True, copy_function=os.link)
    return copies


def active(directory: Path):
    link = directory / "current"
    return os.readlink(link).split("/")[-1] if link.is_symlink() else None


def model_output(fleet, host: str, directory: Path) -> list:
    """Run the active model on the device over ssh: its output for a fixed input."""
    code = ("import json, numpy as np, edgeml_runtime as er; m = er.load('models/classifier.onnx'); "
            "print(json.dumps(m.run(np.ones((1, 4), np.float32))['probs'].tolist()))")
    done = fleet.logins[host].run(f"cd {shlex.quote(str(directory / 'current'))} && venv/bin/python -c "
                                  f"{shlex.quote(code)}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def expected_output(bundles, version: str) -> list:
    import edgeml_runtime as er
    import numpy as np

    return er.load(bundles["models"][version]).run(np.ones((1, 4), np.float32))["probs"].tolist()


def by_host(done) -> dict:
    return {result["host"]: result for result in json.loads(done.stdout)}


# ------------------------------------------------------------------------------------------- tests


def test_rollout_to_every_host_of_the_inventory(fleet, states, bundles):
    results = by_host(states["v1 run"])
    assert set(results) == set(HOSTS)
    for host in HOSTS:
        result = results[host]
        assert result["ok"] and result["outcome"] == "activated", result
        assert (result["before"], result["version"]) == (None, "v1")
        assert active(states["v1"][host]) == "v1"  # each in its own edgeml_dir
        assert not list((states["v1"][host] / "staging").iterdir())
    import numpy as np

    # Same onnxruntime and CPU on both sides; 1e-6 allows for a different thread split.
    np.testing.assert_allclose(model_output(fleet, "dev-b", states["v1"]["dev-b"]), expected_output(bundles, "v1"),
                               atol=1e-6)
    assert ": deploy: " in states["v1 run"].stderr and ": smoke: " in states["v1 run"].stderr


def test_exported_playbook_runs_with_ansible_playbook(fleet, states, bundles):
    done = states["v2 run"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "failed=0" in done.stdout and "unreachable=0" in done.stdout
    assert "activated: active v2 (previous v1)" in done.stdout  # the role's summary, per host
    for host in HOSTS:
        assert active(states["v2"][host]) == "v2"
        assert os.readlink(states["v2"][host] / "previous") == "releases/v1"
    import numpy as np

    np.testing.assert_allclose(model_output(fleet, "dev-c", states["v2"]["dev-c"]), expected_output(bundles, "v2"),
                               atol=1e-6)


def test_export_is_self_contained_and_replaceable(tmp_path):
    target = tmp_path / "ansible" / "edgeml"
    done = edgeml("deploy", "--export-ansible", target, check_exit=0)
    assert f"ansible-playbook -i INVENTORY {target}/site.yml -e bundle=PATH" in done.stdout
    agent = Path(__file__).resolve().parents[2] / "edgeml" / "device" / "agent.py"
    assert (target / "roles" / "edgeml" / "files" / "agent.py").read_bytes() == agent.read_bytes()
    for name in ("site.yml", "README.md", "roles/edgeml/tasks/main.yml", "roles/edgeml/defaults/main.yml"):
        assert (target / name).is_file(), name
    (target / "site.yml").write_text("# changed\n")
    edgeml("deploy", "--export-ansible", target, check_exit=0)  # an earlier export is replaced
    assert "hosts:" in (target / "site.yml").read_text()
    other = tmp_path / "theirs"
    other.mkdir()
    (other / "site.yml").write_text("# a team's own playbook\n")
    refused = edgeml("deploy", "--export-ansible", other, check_exit=2)
    assert "has other files in it" in refused.stderr and "# a team's" in (other / "site.yml").read_text()


def test_status_json_has_one_entry_per_host(fleet, states):
    inventory = fleet.inventory(states["v2"]["dev-a"].parents[2] / "status.yml", states["v2"])
    done = edgeml("deploy", "--status", "--inventory", inventory, *fleet.ssh(), "--json", check_exit=0)
    results = by_host(done)
    assert set(results) == set(HOSTS)
    for host in HOSTS:
        assert results[host]["version"] == "v2" and results[host]["previous"] == "v1"
        assert results[host]["details"]["dir"] == str(states["v2"][host])
    limited = by_host(edgeml("deploy", "--status", "--inventory", inventory, *fleet.ssh(), "--limit", "rest",
                             "--json", check_exit=0))
    assert set(limited) == {"dev-b", "dev-c"}


def test_bench_gives_one_table_for_the_fleet(fleet, states):
    inventory = fleet.inventory(states["v2"]["dev-a"].parents[2] / "bench.yml", states["v2"])
    done = edgeml("deploy", "--bench", "--runs", "10", "--inventory", inventory, *fleet.ssh(), "--json", check_exit=0)
    for host, result in by_host(done).items():
        (row,) = result["bench"]
        assert row["schema"] == "edgeml.bench/1" and row["model"].endswith("releases/v2/models/classifier.onnx"), host
    table = edgeml("deploy", "--bench", "--runs", "10", "--inventory", inventory, *fleet.ssh(), "--limit", "dev-a",
                   check_exit=0).stdout
    assert "Benchmarks on the devices" in table and "dev-a" in table and "onnxruntime" in table


def test_rollback_through_the_inventory(fleet, states, tmp_path, bundles):
    dirs = copy_states(states["v2"], tmp_path / "devices")
    inventory = fleet.inventory(tmp_path / "inventory.ini", dirs)
    done = edgeml("deploy", "--rollback", "--inventory", inventory, *fleet.ssh(), "--json", check_exit=0)
    for host, result in by_host(done).items():
        assert (result["outcome"], result["before"], result["version"]) == ("rolled back", "v2", "v1"), host
        assert active(dirs[host]) == "v1"
    import numpy as np

    np.testing.assert_allclose(model_output(fleet, "dev-a", dirs["dev-a"]), expected_output(bundles, "v1"), atol=1e-6)


def test_tampered_bundle_stops_the_canary_rollout(fleet, states, tmp_path, bundles):
    dirs = copy_states(states["v2"], tmp_path / "devices")
    inventory = fleet.inventory(tmp_path / "inventory.yml", dirs)
    tampered = tmp_path / "tampered.tar.gz"
    _rewrite_bundle(bundles["v1"], tampered, version="tampered")  # one model byte flipped, manifest unchanged
    done = edgeml("deploy", tampered, "--inventory", inventory, *fleet.ssh(), "--serial", "1", "--max-fail", "0",
                  check_exit=1)
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│ dev-")}
    assert "v2 (kept)" in rows["dev-a"] and "failed" in rows["dev-a"] and "verify" in rows["dev-a"]
    assert "not started" in rows["dev-b"] and "not started" in rows["dev-c"]
    assert "sha256 mismatch for models/classifier.onnx" in done.stdout + done.stderr
    assert "the rollout stopped: 2 host(s)" in done.stderr
    for host in HOSTS:  # every host still on its previous release, nothing left behind
        assert active(dirs[host]) == "v2", host
        assert not (dirs[host] / "releases" / "tampered").exists()
        assert not list((dirs[host] / "staging").iterdir()), host


def test_a_host_that_is_down_fails_alone(fleet, states, tmp_path, bundles):
    dirs = copy_states(states["v2"], tmp_path / "devices")
    inventory = fleet.inventory(tmp_path / "inventory.yml", dirs, down=True)
    # v1 is still installed on every device (as previous): verified, smoke-tested and switched again.
    done = edgeml("deploy", bundles["v1"], "--inventory", inventory, *fleet.ssh(), "--json", check_exit=1)
    results = by_host(done)
    assert not results["dev-down"]["ok"] and results["dev-down"]["outcome"] == "unreachable"
    assert results["dev-down"]["stage"] == "connect" and "Connection refused" in results["dev-down"]["error"]
    for host in HOSTS:
        assert results[host]["ok"] and (results[host]["before"], results[host]["version"]) == ("v2", "v1"), host
        assert active(dirs[host]) == "v1"
    assert "1 of 4 host(s) failed" in done.stderr


def test_interrupted_rollout_keeps_the_previous_release(fleet, states, tmp_path, bundles):
    dirs = copy_states(states["v2"], tmp_path / "devices")
    inventory = fleet.inventory(tmp_path / "inventory.yml", dirs)
    process = subprocess.Popen(command("edgeml", "deploy", bundles["v3"], "--inventory", inventory, *fleet.ssh(),
                                       "--limit", "dev-a"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    release = dirs["dev-a"] / "releases" / "v3"
    deadline = time.monotonic() + 300
    while not (release / "venv").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)  # the agent has verified the upload and is installing
    assert process.poll() is None, "the deploy finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: edgeml and ansible-playbook both get it
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, stderr
    deadline = time.monotonic() + 60
    while (release.exists() or list((dirs["dev-a"] / "staging").iterdir())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not release.exists() and active(dirs["dev-a"]) == "v2"
    assert not list((dirs["dev-a"] / "staging").iterdir())


def test_a_killed_edgeml_takes_its_rollout_down(fleet, states, tmp_path, bundles):
    """SIGKILL reaches no handler in edgeml; ansible-playbook still gets the Ctrl-C it would have got (the
    kernel's parent-death signal) instead of rolling the bundle out unwatched: it ends, and the device backs out."""
    dirs = copy_states(states["v2"], tmp_path / "devices")
    inventory = fleet.inventory(tmp_path / "inventory.yml", dirs)
    process = subprocess.Popen(command("edgeml", "deploy", bundles["v3"], "--inventory", inventory, *fleet.ssh(),
                                       "--limit", "dev-a"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    release = dirs["dev-a"] / "releases" / "v3"
    deadline = time.monotonic() + 300
    while not (release / "venv").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)  # the agent has verified the upload and is installing
    assert process.poll() is None, "the deploy finished before it could be killed"
    process.kill()  # edgeml alone: ansible-playbook and its ssh sessions are left in the process group
    process.wait()
    deadline = time.monotonic() + 120
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _group_alive(process.pid), "ansible-playbook kept running after edgeml was killed"
    deadline = time.monotonic() + 60
    while (release.exists() or list((dirs["dev-a"] / "staging").iterdir())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not release.exists() and active(dirs["dev-a"]) == "v2"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_without_ansible_the_error_says_what_to_install(tmp_path, bundles):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[devices]\ndev ansible_host=127.0.0.1\n")
    # This interpreter without ansible (as if the extra were not installed) and a PATH without ansible-playbook.
    code = "import sys; sys.modules['ansible'] = None; from edgeml.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "deploy", str(bundles["v1"]), "--inventory", str(inventory)],
                          capture_output=True, text=True, env={**os.environ, "PATH": "/nonexistent"}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pip install 'edgeml[fleet]'" in done.stderr and "Traceback" not in done.stderr


def test_bad_fleet_invocations_exit_2(tmp_path, bundles):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[devices]\ndev ansible_host=127.0.0.1\n")
    cases = [
        (["--status", "--limit", "dev"], "work with --inventory"),
        (["--status", "--host", "pi@pi1", "--inventory", inventory], "not both"),
        ([bundles["v1"], "--inventory", inventory, "--serial", "0"], "--serial 0"),
        ([bundles["v1"], "--inventory", inventory, "--max-fail", "150%"], "--max-fail 150%"),
        ([bundles["v1"], "--export-ansible", tmp_path / "x"], "only writes the playbook"),
        (["--status"], "give --host"),
    ]
    for args, message in cases:
        done = edgeml("deploy", *args, check_exit=2)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_no_matching_host_and_unreadable_inventory_exit_2(tmp_path):
    pytest.importorskip("ansible")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[devices]\ndev ansible_host=127.0.0.1\n")
    nothing = edgeml("deploy", "--status", "--inventory", inventory, "--limit", "nosuchgroup", check_exit=2)
    assert "ansible-playbook failed" in nothing.stderr and "no hosts to target" in nothing.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("all: [this is: not an inventory\n")
    done = edgeml("deploy", "--status", "--inventory", broken, check_exit=2)
    assert "ansible-playbook failed" in done.stderr and "Traceback" not in done.stderr
