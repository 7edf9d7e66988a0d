"""``cronflow-actors net ...``: a net workflow's instances from the command line, through a
running server's API, as ``run``/``inspect``/``resume`` are for flows:

- ``net start WORKFLOW [--payload JSON] [--instance-id ID]`` starts an instance (``POST
  /workflows``; once, with an id) and prints its id;
- ``net show WORKFLOW_ID`` prints its state and each task's, and under each open task its work
  items (their ids, to act on) or child workflows;
- ``net item ACTION WORK_ITEM_ID [--payload JSON]`` starts, completes, fails, cancels or resets
  a work item (``POST /work-items/{id}/{action}``);
- ``net add-item WORKFLOW_ID TASK`` and ``net add-child WORKFLOW_ID TASK [--workflow NAME]``
  add a work item to a task, a child workflow to a composite task.

Every call carries the token (``--token``/``CRONFLOW_TOKEN``), whose principal the actions'
policies ask; a refusal exits as ``exits.py`` says (2 for a missing token or one a policy
refuses, 3 for an element that is not there or whose state refuses it), in the server's
words."""

from __future__ import annotations

import argparse
from typing import Any

from cronflow_actors.cli.commands import _client, _client_options, _path
from cronflow_actors.cli.exits import Exit
from cronflow_actors.cli.payload import add_payload_option, read_payload
from cronflow_actors.cli.render import print_json
from cronflow_actors.messages.states import WorkItemVerb

__all__ = ["add_net_command"]

_ACTIONS = [str(verb) for verb in WorkItemVerb]
_OPEN = ("enabled", "started")
"""The task states whose children may be acted on."""


def _start(args: argparse.Namespace) -> int:
    body = {"workflow": args.workflow, "payload": read_payload(args.payload)}
    if args.instance_id is not None:
        body["instance_id"] = args.instance_id
    answer = _client(args).call("POST", "/workflows", body, expect=("workflow_id",))
    if args.json:
        print_json(answer)
    else:
        print(answer["workflow_id"])
    return Exit.OK


def _show(args: argparse.Namespace) -> int:
    client = _client(args)
    workflow = client.call("GET", f"/workflows/{_path(args.workflow_id)}", expect=("tasks",))
    shown: dict[str, Any] = {"workflow": workflow, "children": {}}
    lines = [f"{workflow['id']}  {workflow['name']} {workflow['version']}  {workflow['state']}"]
    for task, state in workflow["tasks"].items():
        lines.append(f"  {task}  {state}")
        if state not in _OPEN:
            continue
        base = f"/workflows/{_path(args.workflow_id)}/tasks/{_path(task)}"
        items = client.call("GET", f"{base}/work-items", expect=("work_items",))["work_items"]
        for item in items:
            lines.append(f"    work item {item['id']}  {item['state']}")
        if not items:  # a composite task's children are workflows
            children = client.call("GET", f"{base}/children", expect=("workflows",))["workflows"]
            shown["children"][task] = children
            for child in children:
                lines.append(f"    child workflow {child['id']}  {child['name']}  {child['state']}")
        else:
            shown["children"][task] = items
    if args.json:
        print_json(shown)
    else:
        print("\n".join(lines))
    return Exit.OK


def _item(args: argparse.Namespace) -> int:
    path = f"/work-items/{_path(args.work_item_id)}/{args.action}"
    answer = _client(args).call("POST", path, read_payload(args.payload), expect=("state",))
    if args.json:
        print_json(answer)
    else:
        print(f"work item {answer['id']}: {answer['state']}")
    return Exit.OK


def _add(args: argparse.Namespace) -> int:
    kind = "children" if args.child else "work-items"
    path = f"/workflows/{_path(args.workflow_id)}/tasks/{_path(args.task)}/{kind}"
    query = {"workflow": getattr(args, "workflow", None)}
    made = "workflow_id" if args.child else "work_item_id"
    body = read_payload(args.payload)
    answer = _client(args).call("POST", path, body, query=query, expect=(made,))
    if args.json:
        print_json(answer)
    else:
        print(answer[made])
    return Exit.OK


def add_net_command(commands: Any) -> None:
    """Add ``net`` and its subcommands to the ``cronflow-actors`` subcommands."""
    net = commands.add_parser("net", help="start and drive net workflows' instances")
    actions = net.add_subparsers(dest="net_command", required=True, metavar="COMMAND")

    start = actions.add_parser("start", help="start an instance of a net workflow")
    start.add_argument("workflow", metavar="WORKFLOW", help="the net workflow's name")
    add_payload_option(start, "the payload its initialize action gets, as JSON")
    start.add_argument(
        "--instance-id",
        default=None,
        metavar="ID",
        help="the instance's id (1 to 100 letters, digits, '-' or '_'), to start it once: an "
        "id in use already is refused (exit 3) and nothing starts (default: a new random id)",
    )
    _client_options(start, json_help="print the server's answer as JSON")
    start.set_defaults(handler=_start)

    show = actions.add_parser(
        "show", help="an instance's state, its tasks', and the work items of its open tasks"
    )
    show.add_argument("workflow_id", metavar="WORKFLOW_ID")
    _client_options(show, json_help="print what was read as JSON")
    show.set_defaults(handler=_show)

    item = actions.add_parser("item", help="start, complete, fail, cancel or reset a work item")
    item.add_argument("action", choices=_ACTIONS, metavar="ACTION")
    item.add_argument("work_item_id", metavar="WORK_ITEM_ID")
    add_payload_option(item, "the payload the action gets, as JSON")
    _client_options(item, json_help="print the work item after the action as JSON")
    item.set_defaults(handler=_item)

    for name, child, what in (
        ("add-item", False, "add a work item to a task (its latest generation)"),
        ("add-child", True, "add a child workflow to a composite task (its latest generation)"),
    ):
        add = actions.add_parser(name, help=what)
        add.add_argument("workflow_id", metavar="WORKFLOW_ID")
        add.add_argument("task", metavar="TASK")
        if child:
            add.add_argument(
                "--workflow",
                default=None,
                metavar="NAME",
                help="the child type, for a dynamic composite task",
            )
        add_payload_option(add, "the payload its initialize action gets, as JSON")
        _client_options(add, json_help="print the server's answer as JSON")
        add.set_defaults(handler=_add, child=child)
