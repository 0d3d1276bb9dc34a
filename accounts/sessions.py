"""The session engine (`SESSION_ENGINE = "accounts.sessions"`): Django's database sessions, stored
in `UserSession` so each row knows its user, client and age."""

from datetime import datetime

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils import timezone

from accounts.models import UserSession

# Keys the login flow writes into a session and this store copies into columns.
KEY_CREATED = "iam_created"
KEY_IP = "iam_ip"
KEY_USER_AGENT = "iam_ua"


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls):
        return UserSession

    def create_model_instance(self, data):
        obj = super().create_model_instance(data)
        obj.user_id = data.get("_auth_user_id")
        obj.ip = data.get(KEY_IP)
        obj.user_agent = data.get(KEY_USER_AGENT, "")
        if data.get(KEY_CREATED):
            obj.created_at = datetime.fromisoformat(data[KEY_CREATED])
        obj.last_seen_at = timezone.now()  # a save is activity; every column is written on save
        return obj
