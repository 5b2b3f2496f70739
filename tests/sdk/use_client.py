"""Calls the admin API through a client generated from its OpenAPI document
by openapi-python-client (tests/first_hour.rs generates it, then runs this).

argv: <folder holding the generated package> <admin base URL> <admin key> <receiver URL>
Prints one JSON object of what it saw; any failure raises (exit code 1).
"""
import json
import sys
import time

sys.path.insert(0, sys.argv[1])

from hookd_admin_api_client import AuthenticatedClient  # noqa: E402
from hookd_admin_api_client.api.deliveries import get_delivery, list_deliveries  # noqa: E402
from hookd_admin_api_client.api.endpoints import (  # noqa: E402
    create_endpoint,
    get_endpoint,
    list_endpoints,
    pause_endpoint,
    resume_endpoint,
    rotate_endpoint_secret,
)
from hookd_admin_api_client.api.events import publish_event  # noqa: E402
from hookd_admin_api_client.api.keys import list_api_keys  # noqa: E402
from hookd_admin_api_client.models import (  # noqa: E402
    CreateEndpoint,
    EndpointView,
    ErrorBody,
    PauseRequest,
    PublishEvent,
    PublishEventData,
    RotateRequest,
)

base, key, receiver = sys.argv[2], sys.argv[3], sys.argv[4]
ws = "ws_sdk"
client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)

created = create_endpoint.sync(
    ws, client=client, body=CreateEndpoint(url=receiver, event_types=["card.created"])
)
assert isinstance(created, EndpointView), created
assert created.secret, "the secret comes with the created endpoint"
listed = list_endpoints.sync(ws, client=client)
assert [e.id for e in listed.data] == [created.id], listed
assert get_endpoint.sync(ws, created.id, client=client).url == receiver

published = publish_event.sync(
    ws,
    client=client,
    body=PublishEvent(type_="card.created", data=PublishEventData.from_dict({"cardId": "c1"})),
)
event_id = published.event_id

deadline = time.time() + 20
page = None
while time.time() < deadline:
    page = list_deliveries.sync(ws, client=client, endpoint_id=created.id)
    if page.data and page.data[0].status.value == "succeeded":
        break
    time.sleep(0.1)
assert page and page.data, page
assert page.data[0].status.value == "succeeded", get_delivery.sync(ws, page.data[0].id, client=client)
delivery = get_delivery.sync(ws, page.data[0].id, client=client)
assert delivery.event_id == event_id, (delivery.event_id, event_id)
assert delivery.attempts[0].status_code == 200 and delivery.attempts[0].succeeded, delivery.attempts

paused = pause_endpoint.sync(ws, created.id, client=client, body=PauseRequest(reason="sdk"))
assert paused.paused and paused.paused_reason == "sdk", paused
resumed = resume_endpoint.sync(ws, created.id, client=client)
assert resumed.endpoint.paused is False, resumed
rotated = rotate_endpoint_secret.sync(ws, created.id, client=client, body=RotateRequest(grace_seconds=0))
assert rotated.secret and rotated.secret != created.secret

keys = list_api_keys.sync(ws, client=client)
missing = get_endpoint.sync(ws, "ep_missing", client=AuthenticatedClient(base_url=base, token=key))
assert isinstance(missing, ErrorBody) and missing.code == "not_found", missing

print(json.dumps({
    "endpoint": created.id,
    "event": event_id,
    "delivery": delivery.id,
    "keys": len(keys.data),
}))
