import pytest

from tests.scim.conftest import user_body

pytestmark = pytest.mark.django_db


def test_create_get_list(scim):
    response = scim.post("/Users", user_body("bjensen@example.com"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["userName"] == "bjensen@example.com" and response["ETag"] == 'W/"1"'
    got = scim.get(f"/Users/{body['id']}")
    assert got.status_code == 200 and got.json()["id"] == body["id"]
    listed = scim.get('/Users?filter=userName eq "BJENSEN@example.com"').json()
    assert listed["totalResults"] == 1
    assert scim.get("/Schemas").json()["totalResults"] == 3
