"""``POST /workflows/{id}/migrate``: the caller must be one the old root's ``cancel`` action
admits (a migration ends it), the new root's id (asking again answers it again), refusals as
problems; ``GET
/workflows/{id}`` shows either side of a migration; ``cronflow-actors migrate RUN_ID --to
VERSION`` through a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import cronflow_actors as cf
from cronflow_actors import net
from cronflow_actors.runtime.migrations import kept_by_migrations
from tests.http.conftest import Serve
from tests.http.test_cli_commands import cli
from tests.nets import chain

TOKENS = {
    "t-ops": cf.Principal(id="ops", scopes=frozenset({"ship:admin"})),
    "t-reader": cf.Principal(id="reader"),
}
BEARER = {"Authorization": "Bearer t-ops"}
READER = {"Authorization": "Bearer t-reader"}
CANCEL = net.action(policy=net.require_scope("ship:admin"))


def spec(version: str, *tasks: str, cancel: net.ActionSpec | None = CANCEL) -> net.NetSpec:
    builder = chain("ship", version, *tasks)
    if cancel is not None:
        builder.actions(cancel=cancel)
    return builder.build()


async def test_migrate_over_http(serve: Serve) -> None:
    v1, v2 = spec("v1", "pack"), spec("v2", "pack", "label")
    migration = net.migration(v1, v2).task_migrators({"ship/pack": lambda ctx: "continue"})
    rt, client = await serve([v1, v2, migration.build()], tokens=TOKENS)
    old = await rt.start_workflow("ship", version="v1")
    url = f"/workflows/{old}/migrate"

    assert (await client.post(url, json={"to_version": "v2"})).status_code == 401
    bad = await client.post(url, json={"version": "v2"}, headers=BEARER)
    assert bad.status_code == 400
    assert "to_version" in bad.json()["detail"]
    long = await client.post(url, json={"to_version": "v" * 100_000}, headers=BEARER)
    assert long.status_code == 400  # a 409 that echoed it twice (the second hostile client's N7)
    assert len(long.content) < 1000
    refused = await client.post(url, json={"to_version": "v7"}, headers=BEARER)
    assert refused.status_code == 409
    assert "'v7' is not registered" in refused.json()["detail"]
    missing = await client.post(
        "/workflows/nope/migrate", json={"to_version": "v2"}, headers=BEARER
    )
    assert missing.status_code == 404
    assert (await rt.workflow_state(old)) == "initialized"  # refusals changed nothing

    moved = await client.post(url, json={"to_version": "v2"}, headers=BEARER)
    assert moved.status_code == 201
    new = moved.json()["workflow_id"]
    assert moved.json() == {"workflow_id": new, "migrated_from": old, "version": "v2"}
    assert moved.headers["Location"] == f"/workflows/{new}"
    again = await client.post(url, json={"to_version": "v2"}, headers=BEARER)
    assert (again.status_code, again.json()["workflow_id"]) == (201, new)

    shown = (await client.get(f"/workflows/{new}", headers=BEARER)).json()
    assert (shown["version"], shown["migrated_from"], shown["migrated_to"]) == ("v2", old, None)
    assert shown["tasks"] == {"pack": "enabled", "label": "disabled"}
    before = (await client.get(f"/workflows/{old}", headers=BEARER)).json()
    assert (before["state"], before["migrated_to"]) == ("canceled", new)


async def test_the_migrate_command_of_the_cli(serve: Serve) -> None:
    v1, v2 = spec("v1", "pack"), spec("v2", "pack", "label")
    rt, client = await serve([v1, v2, net.migration(v1, v2).build()], tokens=TOKENS)
    old = await rt.start_workflow("ship", version="v1")
    options = ["--url", str(client.base_url), "--token", "t-ops"]
    code, out, _ = await cli("migrate", old, "--to", "v2", "--json", *options)
    assert code == 0
    answer = json.loads(out)
    assert (answer["migrated_from"], answer["version"]) == (old, "v2")
    assert (await rt.migration_links(old)).migrated_to == answer["workflow_id"]
    code, out, _ = await cli("migrate", old, "--to", "v2", *options)  # again: the same id
    assert (code, out.strip()) == (0, f"migrated {old} to v2: now {answer['workflow_id']}")
    # the list tells the run migrated away from a plain cancel (newcomer h34 F10)
    code, out, _ = await cli("runs", "--workflow", "ship", *options)
    assert code == 0
    statuses = {line.split()[0]: line.split()[2:4] for line in out.splitlines()[1:]}
    assert statuses[old] == ["canceled", "(migrated)"]
    assert statuses[answer["workflow_id"]][0] in ("running", "waiting")
    code, _, err = await cli("migrate", answer["workflow_id"], "--to", "v9", *options)
    assert code == 3  # refused
    assert "'v9' is not registered" in err


async def test_a_migration_asks_the_old_roots_cancel_policy(serve: Serve) -> None:
    """A migration ends the old root, so whoever its ``cancel`` policy refuses may not migrate
    it (any token could, the second hostile client's N2): refused, nothing changed, no plan
    left for a restart to carry on; an admitted caller is recorded on the old root's cancel."""
    v1, v2 = spec("v1", "pack"), spec("v2", "pack", "label")
    rt, client = await serve([v1, v2, net.migration(v1, v2).build()], tokens=TOKENS)
    old = await rt.start_workflow("ship", version="v1")
    url = f"/workflows/{old}/migrate"

    denied = await client.post(url, json={"to_version": "v2"}, headers=READER)
    assert (denied.status_code, denied.json()["type"]) == (
        403,
        "urn:cronflow:problem:action-denied",
    )
    assert "caller 'reader' may not run action 'cancel'" in denied.json()["detail"]
    assert "which its migration cancels" in denied.json()["detail"]
    # the policy by name, when it has one: what the caller lacks (the newcomer's finding 18)
    assert "its policy require_scope('ship:admin') denied it" in denied.json()["detail"]
    assert await rt.workflow_state(old) == "initialized"
    assert (await rt.migration_links(old)).migrated_to is None
    assert await kept_by_migrations(rt.store, 0.0) == set()  # no plan for a restart

    moved = await client.post(url, json={"to_version": "v2"}, headers=BEARER)
    assert moved.status_code == 201
    cancels = [n.span for n in (await rt.trace(old)).roots if n.span.operation == "Action.cancel"]
    assert [(s.attributes["principal"], s.attributes["reason"]) for s in cancels] == [
        ("ops", "migration")
    ]


async def test_an_internal_only_cancel_admits_no_outside_migration(serve: Serve) -> None:
    """A net workflow without a custom ``cancel`` action cannot be ended from outside, by a
    cancel or a migration; this process's own call migrates it. A flow's run has no cancel
    action: any caller of the API may migrate it, as it may cancel it."""
    v1, v2 = spec("v1", "pack", cancel=None), spec("v2", "pack", "label", cancel=None)
    flow_v1 = cf.define("notes", version="v1").sleep("nap", "1h").step("s", lambda ctx: 1)
    flow_v2 = cf.define("notes", version="v2").sleep("nap", "1h").step("t", lambda ctx: 2)
    rt, client = await serve([v1, v2, net.migration(v1, v2).build(), flow_v1], tokens=TOKENS)
    old = await rt.start_workflow("ship", version="v1")
    refused = await client.post(
        f"/workflows/{old}/migrate", json={"to_version": "v2"}, headers=BEARER
    )
    assert (refused.status_code, refused.json()["type"]) == (
        403,
        "urn:cronflow:problem:action-denied",
    )
    assert "action 'cancel' of workflow 'ship'" in refused.json()["detail"]
    assert "is internal-only" in refused.json()["detail"]
    assert await rt.workflow_state(old) == "initialized"
    new = await rt.migrate(old, "v2")  # no principal: the process's own call
    assert (await rt.migration_links(old)).migrated_to == new

    run_id = await rt.trigger("notes")
    await rt.wait_idle()
    rt.register(flow_v2)
    moved = await client.post(
        f"/workflows/{run_id}/migrate", json={"to_version": "v2"}, headers=READER
    )
    assert moved.status_code == 201
    assert (await rt.migration_links(run_id)).migrated_to == moved.json()["workflow_id"]


async def test_a_flows_run_migrates_where_its_other_actions_are(serve: Serve) -> None:
    """``POST /runs/{id}/migrate`` was a bare 404, where cancel and replay are (newcomer h24
    F6): a run moves there too, its answer in a run's words."""
    v1 = cf.define("order", version="v1").step("a", lambda ctx: 1).pause("ok")
    v2 = cf.define("order", version="v2").step("a", lambda ctx: 2).pause("ok").step("b", str)
    rt, client = await serve([v1, v2], tokens=TOKENS)
    old = await rt.trigger("order")
    await rt.wait_idle()
    url = f"/runs/{old}/migrate"
    assert (await rt.inspect(old)).version == "v2"  # (the newest)
    assert (await client.post(url, json={"to_version": "v1"})).status_code == 401
    refused = await client.post(url, json={"to_version": "v9"}, headers=BEARER)
    assert refused.status_code == 409
    moved = await client.post(url, json={"to_version": "v1"}, headers=BEARER)
    assert moved.status_code == 201, moved.text
    new = moved.json()["run_id"]
    assert moved.json() == {"run_id": new, "migrated_from": old, "version": "v1"}
    assert moved.headers["Location"] == f"/runs/{new}"
    shown = (await client.get(moved.headers["Location"], headers=BEARER)).json()
    assert (shown["migrated_from"], shown["version"]) == (old, "v1")
    assert [s["status"] for s in shown["steps"]][:1] == ["completed"]  # kept, not run again
    # who moved it: the old run's cancel said "internal" (versions h44 F1)
    cancels = [n.span for n in (await rt.trace(old)).roots if n.span.operation == "Action.cancel"]
    assert [(s.attributes.get("principal"), s.attributes["reason"]) for s in cancels] == [
        ("ops", "migration")
    ]
    document = (await client.get("/openapi.json")).json()
    assert document["paths"]["/runs/{run_id}/migrate"]["post"]["operationId"] == "migrateRun"


async def test_a_nets_pending_migration_is_given_up_through_either_cancel(serve: Serve) -> None:
    """``POST /workflows/{id}/cancel`` of a root canceled for a migration still pending said
    "it has ended, and nothing changes it any more", to its asker too, while ``POST
    /runs/{id}/cancel`` gave it up (the verifier's h29 V3): both give it up."""
    broken = [True]

    def initializer(ctx: object) -> None:
        if broken:
            raise RuntimeError("v2 cannot start yet")

    v1, v2 = spec("v1", "pack"), spec("v2", "pack", "label")
    migration = net.migration(v1, v2).initializer(initializer).build()
    rt, client = await serve([v1, v2, migration], tokens=TOKENS)
    old = await rt.start_workflow("ship", version="v1")
    pending = await client.post(
        f"/workflows/{old}/migrate", json={"to_version": "v2"}, headers=BEARER
    )
    assert pending.status_code == 409, pending.text
    assert (await rt.migration_links(old)).migrated_to is not None
    given_up = await client.post(f"/workflows/{old}/cancel", headers=BEARER)
    assert given_up.status_code == 200, given_up.text
    assert (await rt.migration_links(old)).migrated_to is None
    again = await client.post(f"/workflows/{old}/cancel", headers=BEARER)
    assert again.status_code == 409  # ended, and nothing is pending any more


async def test_a_run_that_cannot_run_here_is_migrated_and_canceled_in_its_callers_name(
    serve: Serve, tmp_path: Path
) -> None:
    """Ended without its code (its version not registered here), a flow's run migrated or
    canceled over HTTP was recorded as the runtime's own act (versions h44 F1)."""
    v1 = cf.define("order", version="v1").step("a", lambda ctx: 1).pause("ok")
    v2 = cf.define("order", version="v2").step("a", lambda ctx: 2).pause("ok")
    async with cf.Runtime(db=tmp_path / "http0.db", workflows=[v1]) as before:  # (serve's file)
        moving, ending = await before.trigger("order"), await before.trigger("order")
        await before.wait_idle()
    rt, client = await serve([v2], tokens=TOKENS)
    url = f"/runs/{moving}/migrate"
    moved = await client.post(url, json={"to_version": "v2"}, headers=BEARER)
    assert moved.status_code == 201, moved.text
    ended = await client.post(f"/runs/{ending}/cancel", headers=READER)
    assert ended.status_code == 200, ended.text
    for run, who, reason in ((moving, "ops", "migration"), (ending, "reader", None)):
        spans = [n.span for n in (await rt.trace(run)).roots]
        cancels = [s.attributes for s in spans if s.operation == "Action.cancel"]
        assert [(s.get("principal"), s.get("reason")) for s in cancels] == [(who, reason)]


async def test_a_net_instance_on_a_version_not_registered_is_told_to_register_it_again(
    serve: Serve, tmp_path: Path
) -> None:
    """The 409 said to register a migration, which cannot be registered without the old
    version: the start then refused it (versions h44 F3)."""
    v1, v2 = spec("v1", "pack"), spec("v2", "pack", "label")
    async with cf.Runtime(db=tmp_path / "http0.db", workflows=[v1]) as before:  # (serve's file)
        old = await before.start_workflow("ship", version="v1")
    rt, client = await serve([v2], tokens=TOKENS)
    url = f"/workflows/{old}/migrate"
    refused = await client.post(url, json={"to_version": "v2"}, headers=BEARER)
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "the instance's version 'v1' is not registered here (registered: ['v2'])" in detail
    assert "register version 'v1' again beside 'v2', with net.migration between them" in detail
    assert await rt.workflow_state(old) == "initialized"
