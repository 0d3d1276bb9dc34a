"""Form helpers every page uses: labels without a colon, and the grouped permission picker."""

from django import forms

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
