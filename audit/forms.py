from django import forms

from accounts.models import ApiKey, Membership
from web.forms import PageForm

_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def _datetime_field(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        required=False, label=label, input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


class AuditFilterForm(PageForm):
    actor = forms.ChoiceField(required=False, label="Actor")
    event = forms.CharField(required=False, max_length=64, label="Event (code or name)",
                            widget=forms.TextInput(attrs={"list": "audit-event-names"}))
    since = _datetime_field("From (UTC)")
    until = _datetime_field("Until (UTC, exclusive)")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        # Actors offered are this org's principals, spelled as the selector expects ("type:id").
        humans = [(f"human:{m.user_id}", m.user.email)
                  for m in Membership.objects.for_org(org).select_related("user").order_by("user__email")]
        keys = [(f"api_key:{k.pk}", f"API key: {k.name}")
                for k in ApiKey.objects.for_org(org).order_by("name")]
        self.fields["actor"].choices = [("", "Anyone"), *humans, *keys]
