"""Renders templates the way Ansible's template module does, for
spec/template_compat_spec.lua: reads a JSON list of {"src", "vars"} on stdin
and writes a JSON list of {"out"} or {"err"} (an exception's class).

Uses ansible-core's own Templar (trim_blocks on, StrictUndefined, trailing
newlines preserved as the template action does), so a case passes only if
the real Ansible agrees.
"""
import json
import sys

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar


def sorted_keys(value):
    """Mappings with their keys in sorted order: etcdrun's variables are Lua
    tables, which have no order, and it walks them by sorted key."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def render(src, variables):
    templar = Templar(loader=DataLoader(), variables=variables)
    with templar.set_temporary_context(trim_blocks=True, lstrip_blocks=False,
                                       newline_sequence="\n"):
        return templar.do_template(src, preserve_trailing_newlines=True,
                                   escape_backslashes=False)


def main():
    cases = json.load(sys.stdin)
    out = []
    for case in cases:
        try:
            res = render(case["src"], sorted_keys(case.get("vars") or {}))
            out.append({"out": res if isinstance(res, str) else str(res)})
        except Exception as e:  # pylint: disable=broad-except
            out.append({"err": type(e).__name__ + ": " + str(e)})
    json.dump(out, sys.stdout)


main()
