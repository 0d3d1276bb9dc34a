import datetime

from django import forms
from django.urls import reverse

from audit.events import Outcome
from audit.selectors import REFUSED, event_families
from web.forms import PageForm

_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
ACTOR_TYPES = ("human", "api_key", "agent", "connection", "scim", "system", "anonymous")
# Filter fields that narrow the log (the rest of the form is the page's cursor).
FILTERS = ("actor", "event", "family", "outcome", "target_type", "target_id", "correlation_id", "since",
           "until")


class UTCDateTimeField(forms.DateTimeField):
    """What a person types is UTC, as the page says, whatever the server's time zone."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is not None:
            parsed = parsed.replace(tzinfo=None).replace(tzinfo=datetime.UTC)
        return parsed


def _datetime_field(label: str) -> forms.DateTimeField:
    return UTCDateTimeField(
        required=False, label=label, input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


class AuditFilterForm(PageForm):
    actor = forms.CharField(
        required=False, max_length=254, label="Actor",
        help_text='A member\'s email (type to search), "type:id" (api_key:…, agent:…) or an id.',
        widget=forms.TextInput(attrs={"list": "audit-actor-options", "autocomplete": "off",
                                      "data-picker-field": "email", "data-picker-label": "name"}))
    event = forms.CharField(required=False, max_length=64, label="Event (code or name)",
                            widget=forms.TextInput(attrs={"list": "audit-event-names"}))
    family = forms.ChoiceField(required=False, label="Event family")
    outcome = forms.ChoiceField(
        required=False, label="Outcome",
        choices=[("", "Any"), *Outcome.CHOICES, (REFUSED, "Refused (denied or failed)")])
    target_type = forms.CharField(required=False, max_length=32, label="Target type",
                                  widget=forms.TextInput(attrs={"list": "audit-target-types"}))
    target_id = forms.CharField(required=False, max_length=64, label="Target id")
    correlation_id = forms.CharField(required=False, max_length=128, label="Correlation id")
    since = _datetime_field("From (UTC)")
    until = _datetime_field("Until (UTC, exclusive)")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, org, naming, **kwargs):
        super().__init__(*args, **kwargs)
        self.org, self.naming = org, naming
        self.fields["family"].choices = [("", "Any"), *((f, f) for f in event_families())]
        members = reverse("api:member-list", kwargs={"org": org.slug})
        self.fields["actor"].widget.attrs["data-picker"] = members

    def clean_actor(self):
        """{"actor": "type:id" or id} or {"actor_display": email}; an email of a current member is
        their user id, so entries from before an address changed are found too."""
        text = self.cleaned_data["actor"].replace("\x00", "").strip()
        if not text:
            return {}
        if "@" in text:
            user_id = self.naming.find(self.org, "user", text)
            return {"actor": f"human:{user_id}"} if user_id else {"actor_display": text}
        actor_type, colon, actor_id = text.rpartition(":")
        if colon and actor_type not in ACTOR_TYPES:
            raise forms.ValidationError(
                f"Unknown actor type {actor_type!r}: use one of {', '.join(ACTOR_TYPES)}, or an email.")
        if len(actor_id) > 64 or (colon and not actor_id):
            raise forms.ValidationError("An actor id is at most 64 characters, after its type.")
        return {"actor": text}

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("“From” must be before “Until”.")
        if data.get("before") and data.get("after") is not None:
            raise forms.ValidationError("A page starts before one entry or after one, not both.")
        return data

    def filters(self) -> dict:
        """The valid filters, as audit_filter takes them."""
        data = self.cleaned_data
        found = {**data["actor"]}
        for name in FILTERS[1:]:
            if data.get(name):
                found[name] = data[name].strip() if isinstance(data[name], str) else data[name]
        return found
