"""Form helpers every page uses: labels without a colon, the grouped permission picker, and a
searching picker for one of an org's objects."""

import uuid

from django import forms
from django.urls import reverse

from core.permissions import Perm, catalogue_by_category


class PageForm(forms.Form):
    """Labels read "Email", not "Email:", which also keeps them exact for assistive tech."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class PermissionsField(forms.MultipleChoiceField):
    """Catalogue permissions by value. Rendered by templates/includes/permission_picker.html."""

    def __init__(self, **kwargs):
        kwargs.setdefault("choices", [(p.value, p.description) for p in Perm])
        super().__init__(**kwargs)


class ObjectPickerField(forms.CharField):
    """One object of `queryset` (already the org's) typed by its name (any case) or posted by its id,
    in a text box that static/js/console.js fills from the admin API list `api` as a person types:
    never a <select> of every row. `options` is the id of the page's <datalist> for it."""

    def __init__(self, *, queryset, name_field: str, api: str, org, options: str, **kwargs):
        kwargs.setdefault("max_length", 254)
        attrs = {"list": options, "autocomplete": "off", "data-picker-field": name_field,
                 "data-picker": reverse(api, kwargs={"org": org.slug})}
        super().__init__(widget=forms.TextInput(attrs=attrs), **kwargs)
        self.queryset, self.name_field = queryset, name_field

    def prepare_value(self, value):
        # A bound object (an initial value, or a form shown again) reads as its name.
        return getattr(value, self.name_field, value)

    def clean(self, value):
        text = super().clean(value)
        if not text:
            return None
        try:
            found = list(self.queryset.filter(pk=uuid.UUID(text))[:1])
        except ValueError:
            # The name as typed first; in any case only when that names exactly one row (names that
            # differ only by case may both exist), so a picker never resolves to a guess.
            found = (list(self.queryset.filter(**{self.name_field: text})[:2])
                     or list(self.queryset.filter(**{f"{self.name_field}__iexact": text})[:2]))
        if not found:
            raise forms.ValidationError(f"Nothing here is named {text}.", code="invalid_choice")
        if len(found) > 1:
            raise forms.ValidationError(f"More than one is named {text} in another case: type the name "
                                        "exactly as it is written.", code="ambiguous")
        return found[0]


def permission_groups(form, field_name: str, access, initial=()) -> list[dict]:
    """Checkbox data grouped by category. Permissions the viewer lacks are disabled: granting them
    would be refused server-side anyway (no escalation), so offering them only invites an error."""
    if form.is_bound:
        chosen = set(form.data.getlist(field_name))
    else:
        chosen = {str(v) for v in initial}
    groups = []
    for category, perms in catalogue_by_category().items():
        items = [
            {"value": p.value, "description": p.description, "id": f"id_{field_name}_{p.name.lower()}",
             "checked": p.value in chosen, "disabled": not access.has(p)}
            for p in perms
        ]
        groups.append({"category": category, "perms": items})
    return groups
