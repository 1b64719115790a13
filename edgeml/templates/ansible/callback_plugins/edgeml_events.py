# edgeml: an Ansible stdout callback that prints one JSON object per line, for `edgeml deploy --inventory`
# (which selects it with ANSIBLE_STDOUT_CALLBACK=edgeml_events) or any script that wants the results:
#
#   {"event": "start", "host": H, "task": NAME, "step": STEP}
#   {"event": "ok"|"failed"|"unreachable"|"skipped", "host": H, "task": NAME, "step": STEP,
#    "rc": int|null, "stdout": str, "stderr": str, "msg": str}
#   {"event": "stopped"}                  (a batch went over max_fail_percentage: no host carries on)
#   {"event": "no_hosts"}                 (the play's pattern and --limit match no host)
#   {"event": "stats", "hosts": {H: {"ok", "changed", "failures", "unreachable", "skipped", ...}}}
#
# STEP is the task's `edgeml_step` variable (null for tasks without one). Warnings and errors of Ansible
# itself go to stderr as usual.

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: edgeml_events
    type: stdout
    short_description: one JSON object per line for edgeml
    description:
        - Prints task starts and results (with the command's rc, stdout and stderr) as JSON lines.
"""

FIELDS = ("rc", "stdout", "stderr", "msg", "module_stderr", "module_stdout")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "edgeml_events"

    def _emit(self, **fields) -> None:
        self._display.display(json.dumps(fields, default=str, sort_keys=True))

    @staticmethod
    def _step(task):
        try:
            step = (task.vars or {}).get("edgeml_step")
        except AttributeError:
            return None
        return str(step) if step is not None else None

    def _result(self, event: str, result) -> None:
        data = getattr(result, "result", None)
        if data is None:  # ansible-core before 2.19
            data = result._result
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        fields = {key: data.get(key) for key in FIELDS if data.get(key) is not None}
        self._emit(event=event, host=host.get_name(), task=task.get_name(), step=self._step(task), **fields)

    def v2_runner_on_start(self, host, task):
        self._emit(event="start", host=host.get_name(), task=task.get_name(), step=self._step(task))

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_playbook_on_no_hosts_matched(self):
        self._emit(event="no_hosts")

    def v2_playbook_on_no_hosts_remaining(self):
        self._emit(event="stopped")

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for host in sorted(stats.processed):
            hosts[host] = stats.summarize(host)
        self._emit(event="stats", hosts=hosts)
