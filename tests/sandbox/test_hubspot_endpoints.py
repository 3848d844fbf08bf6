"""Every CRM object type through its own hubspot-api-client API (``crm.contacts``,
``crm.objects.calls``, ``crm.objects.goals``, ...): create 201, get, update, list with
``archived=False``/``True``, archive 204, search with both sort forms, batch read 207; plus the
settings users/teams APIs, associations v4 batch reads for every pair a connector reads,
``client.api_request`` through ``base_url`` and the rate-limit headers of every tier."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)

TS = "2024-06-01T10:00:00Z"

# object type → (discovery path on the client, properties for a create, a property to update,
# the incremental-sync property of that type).
CASES: dict[str, tuple[Callable[[Any], Any], dict[str, Any], tuple[str, str], str]] = {
    "contacts": (
        lambda c: c.crm.contacts,
        {"email": "new.lead@example.com", "firstname": "New", "lifecyclestage": "lead"},
        ("lastname", "Lead"),
        "lastmodifieddate",
    ),
    "companies": (
        lambda c: c.crm.companies,
        {"name": "Orbit Parts Ltd", "domain": "orbit.example.com"},
        ("industry", "COMPUTER_SOFTWARE"),
        "hs_lastmodifieddate",
    ),
    "deals": (
        lambda c: c.crm.deals,
        {"dealname": "Orbit renewal", "amount": 4200, "dealstage": "appointmentscheduled"},
        ("amount", "4300"),
        "hs_lastmodifieddate",
    ),
    "calls": (
        lambda c: c.crm.objects.calls,
        {"hs_timestamp": TS, "hs_call_duration": 90000, "hs_call_direction": "OUTBOUND"},
        ("hs_call_title", "Follow-up"),
        "hs_lastmodifieddate",
    ),
    "emails": (
        lambda c: c.crm.objects.emails,
        {"hs_timestamp": TS, "hs_email_subject": "Proposal", "hs_email_direction": "EMAIL"},
        ("hs_email_subject", "Proposal v2"),
        "hs_lastmodifieddate",
    ),
    "meetings": (
        lambda c: c.crm.objects.meetings,
        {"hs_timestamp": TS, "hs_meeting_title": "Demo"},
        ("hs_meeting_title", "Demo (moved)"),
        "hs_lastmodifieddate",
    ),
    "tasks": (
        lambda c: c.crm.objects.tasks,
        {"hs_timestamp": TS, "hs_task_subject": "Send contract"},
        ("hs_task_subject", "Send signed contract"),
        "hs_lastmodifieddate",
    ),
    "goal_targets": (
        lambda c: c.crm.objects.goals,
        {"hs_goal_name": "Q3 revenue", "hs_target_amount": 90000},
        ("hs_target_amount", "95000"),
        "hs_lastmodifieddate",
    ),
}


@pytest.mark.parametrize("object_type", list(CASES))
def test_crud_list_search_and_batch_read_per_object_type(
    hubspot_sandbox: HubSpotSandbox, object_type: str
) -> None:
    discover, props, (upd_name, upd_value), modified = CASES[object_type]
    api = discover(hubspot_sandbox.client())
    package = type(api.basic_api).__module__.rsplit(".api.", 1)[0]
    models = __import__(package, fromlist=["x"])

    created = api.basic_api.create(models.SimplePublicObjectInputForCreate(properties=props))
    assert created is not None, "create must answer 201 or the client returns None"
    rid = created.id
    assert all(isinstance(v, str) for v in created.properties.values() if v is not None)
    assert created.properties[modified]  # the incremental cursor is set on create
    got = api.basic_api.get_by_id(rid, properties=[upd_name, modified])
    assert got.id == rid and modified in got.properties

    updated = api.basic_api.update(
        rid, models.SimplePublicObjectInput(properties={upd_name: upd_value})
    )
    assert updated.properties[upd_name] == upd_value
    assert updated.properties[modified] >= created.properties[modified]

    live = api.basic_api.get_page(limit=100, properties=[upd_name], archived=False)
    assert rid in [r.id for r in live.results]
    assert all(isinstance(r.properties.get(upd_name) or "", str) for r in live.results)

    # Search: the record is found by its id, sorted both ways, with all values strings.
    flt = [{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": rid}]}]
    for sorts in ([{"propertyName": modified, "direction": "DESCENDING"}], [f"-{modified}"]):
        res = api.search_api.do_search(
            models.PublicObjectSearchRequest(
                filter_groups=flt, sorts=sorts, properties=[upd_name], limit=200
            )
        )
        assert res.total == 1 and res.results[0].properties[upd_name] == upd_value

    batch = api.batch_api.read(
        models.BatchReadInputSimplePublicObjectId(
            inputs=[{"id": rid}, {"id": "1"}], properties=[upd_name], properties_with_history=[]
        )
    )
    assert [r.id for r in batch.results] == [rid] and batch.num_errors == 1  # 207

    assert api.basic_api.archive(rid) is None  # 204
    with pytest.raises(Exception) as exc:
        api.basic_api.get_by_id(rid)
    assert getattr(exc.value, "status", None) == 404
    gone = api.basic_api.get_page(limit=100, archived=True).results
    assert rid in [r.id for r in gone] and all(r.archived for r in gone)


def test_settings_users_and_teams_apis(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    teams = client.settings.users.teams_api.get_all().results
    assert {t.id: sorted(t.user_ids) for t in teams} == {
        "5000001": ["9000001"],
        "5000002": ["9000002", "9000003"],
    }
    users = client.settings.users.users_api
    first = users.get_page(limit=2)
    assert [u.id for u in first.results] == ["9000001", "9000002"]
    rest = users.get_page(limit=2, after=first.paging.next.after)
    assert [u.id for u in rest.results] == ["9000003"] and rest.paging is None
    bram = users.get_by_id("9000002")
    assert bram.email == "bram@example.com" and bram.primary_team_id == "5000002"
    assert users.get_by_id("chloe@example.com", id_property="EMAIL").id == "9000003"
    from hubspot.settings.users.exceptions import NotFoundException

    with pytest.raises(NotFoundException):
        users.get_by_id("42")
    assert client.settings.users.roles_api.get_all().results == []


@pytest.mark.parametrize(
    ("from_type", "to_type", "from_id", "expected", "type_id"),
    [
        ("deals", "companies", "300000002", ["200000002"], 5),
        ("contacts", "companies", "100000001", ["200000001"], 1),
        ("calls", "contacts", "400000001", ["100000001"], 194),
        ("calls", "companies", "400000001", ["200000001"], 182),
        ("calls", "deals", "400000001", ["300000001"], 206),
        ("meetings", "deals", "400000003", ["300000001"], 212),
        ("emails", "contacts", "400000002", ["100000001"], 198),
        ("deals", "calls", "300000001", ["400000001"], 205),
    ],
)
def test_associations_v4_batch_read_per_pair(
    hubspot_sandbox: HubSpotSandbox,
    from_type: str,
    to_type: str,
    from_id: str,
    expected: list[str],
    type_id: int,
) -> None:
    from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest

    res = hubspot_sandbox.client().crm.associations.v4.batch_api.get_page(
        from_type,
        to_type,
        BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": from_id}]),
    )
    # A 200 (every input had associations) deserialises to the model without errors.
    assert not type(res).__name__.endswith("WithErrors")
    assert [r._from.id for r in res.results] == [from_id]
    to = res.results[0].to
    assert sorted(t.to_object_id for t in to) == expected
    assert type_id in {a.type_id for t in to for a in t.association_types}


def test_api_request_goes_to_base_url(
    hubspot_sandbox: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # client.api_request uses bare `requests`, which trusts REQUESTS_CA_BUNDLE only: point it at
    # the sandbox CA (certificate checks stay on).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", hubspot_sandbox.ca_bundle)
    client = hubspot_sandbox.client()
    r = client.api_request(
        {"method": "GET", "path": "/settings/v3/currencies/exchange-rates", "qs": {"limit": 2}}
    )
    assert r.status_code == 200 and r.json()["paging"]["next"]["after"] == "2"
    posted = client.api_request(
        {"method": "POST", "path": "/crm/v3/objects/deals/search", "body": {"limit": 1}}
    )
    assert posted.status_code == 200 and posted.json()["total"] == 3
    log = hubspot_sandbox.server.requests_log("hubspot")
    assert log[-1]["path"] == "/crm/v3/objects/deals/search"


@pytest.mark.parametrize(
    ("tier", "per_10s", "daily"),
    [("starter", 100, 250_000), ("professional", 190, 625_000), ("enterprise", 190, 1_000_000)],
)
def test_rate_limit_headers_per_tier_through_the_client(
    hubspot_sandbox: HubSpotSandbox, tier: str, per_10s: int, daily: int
) -> None:
    hubspot_sandbox.app.configure({"tier": tier, "reset_limits": True})
    client = hubspot_sandbox.client()
    _, status, headers = client.crm.deals.basic_api.get_page_with_http_info(limit=1)
    assert status == 200
    assert headers["X-HubSpot-RateLimit-Max"] == str(per_10s)
    assert headers["X-HubSpot-RateLimit-Remaining"] == str(per_10s - 1)
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert headers["X-HubSpot-RateLimit-Daily"] == str(daily)
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(daily - 1)
    _, status, search_headers = client.crm.deals.search_api.do_search_with_http_info({"limit": 1})
    assert status == 200
    assert not [h for h in search_headers if h.lower().startswith("x-hubspot-ratelimit")]


def test_search_per_second_limit_through_the_client(hubspot_sandbox: HubSpotSandbox) -> None:
    from hubspot.crm.deals import PublicObjectSearchRequest
    from hubspot.crm.deals.exceptions import ApiException

    hubspot_sandbox.app.configure({"tier": "starter", "reset_limits": True})
    api = hubspot_sandbox.client(retry=Retry(total=0)).crm.deals.search_api
    for _ in range(5):
        assert api.do_search(PublicObjectSearchRequest(limit=1)).total == 3
    with pytest.raises(ApiException) as exc:
        api.do_search(PublicObjectSearchRequest(limit=1))
    assert exc.value.status == 429 and int(exc.value.headers["Retry-After"]) >= 1
    body = json.loads(exc.value.body)
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "SECONDLY")
    # The 10-second budget is separate: a list call still goes through.
    assert hubspot_sandbox.client().crm.deals.basic_api.get_page(limit=1).results


def test_associations_v4_batch_read_takes_up_to_1000_inputs(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
    from hubspot.crm.associations.v4.exceptions import ApiException as AssocApiException

    batch = hubspot_sandbox.client().crm.associations.v4.batch_api
    ids = [{"id": str(300000001 + i)} for i in range(1000)]
    res = batch.get_page("deals", "companies", BatchInputPublicFetchAssociationsBatchRequest(ids))
    assert len(res.results) == 3 and res.num_errors == 997  # 207: deals without a company
    with pytest.raises(AssocApiException) as exc:
        batch.get_page(
            "deals", "companies", BatchInputPublicFetchAssociationsBatchRequest([*ids, {"id": "1"}])
        )
    assert exc.value.status == 400


def test_contacts_incremental_window_on_lastmodifieddate(hubspot_sandbox: HubSpotSandbox) -> None:
    import time

    from hubspot.crm.contacts import PublicObjectSearchRequest

    since = int(time.time() * 1000) - 1000
    edit = hubspot_sandbox.session().post(
        f"{hubspot_sandbox.control_url}/records/contacts/100000002", json={"lastname": "Edited"}
    )
    assert edit.status_code == 200
    res = hubspot_sandbox.client().crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": since},
                        {"propertyName": "hs_object_id", "operator": "GT", "value": "0"},
                    ]
                }
            ],
            sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            properties=["lastname", "lastmodifieddate"],
            limit=200,
        )
    )
    assert [(c.id, c.properties["lastname"]) for c in res.results] == [("100000002", "Edited")]
    assert res.results[0].properties["lastmodifieddate"].endswith("Z")


def test_pipeline_and_stage_edits_reach_dealstage_options(hubspot_sandbox: HubSpotSandbox) -> None:
    from hubspot.crm.pipelines.exceptions import NotFoundException as PipelineNotFound

    client = hubspot_sandbox.client()
    pipes = client.crm.pipelines
    renamed = pipes.pipelines_api.update("deals", "default", {"label": "New business"})
    assert renamed is not None and renamed.label == "New business"
    stage = pipes.pipeline_stages_api.create(
        "deals",
        "default",
        {"label": "Legal review", "displayOrder": 9, "metadata": {"probability": 0.9}},
    )
    assert stage is not None and stage.metadata == {"probability": "0.9"}  # 201, strings
    moved = pipes.pipeline_stages_api.update(
        "deals", "default", stage.id, {"label": "Legal", "metadata": {"probability": "0.95"}}
    )
    assert (moved.label, moved.metadata["probability"]) == ("Legal", "0.95")
    options = client.crm.properties.core_api.get_by_name("deals", "dealstage").options
    assert ("Legal", stage.id) in {(o.label, o.value) for o in options}
    assert pipes.pipeline_stages_api.archive("deals", "default", stage.id) is None  # 204
    with pytest.raises(PipelineNotFound):
        pipes.pipeline_stages_api.get_by_id("deals", "default", stage.id)
    assert stage.id not in {s.id for s in pipes.pipelines_api.get_by_id("deals", "default").stages}
