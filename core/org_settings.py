"""Each app keeps its org settings in a row of its own (the org is its primary key): this is how a
change to such a row is applied, the same for all of them. The app's service locks the row, calls
`settings_apply`, and audits what it returns."""

from django.core.exceptions import ValidationError
from django.utils import timezone

from core.errors import Invalid


def settings_apply(row, changes: dict, fields) -> dict:
    """Set `changes` on the row (unsaved defaults or the locked row), validate the whole row against
    its fields' ranges, save it, and return {field: previous value} of the fields that changed."""
    unknown = set(changes) - set(fields)
    if unknown:
        raise Invalid("Unknown policy settings.", fields={k: ["Unknown setting."] for k in sorted(unknown)})
    previous = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    try:
        row.full_clean(exclude=["org"])
    except ValidationError as exc:
        raise Invalid("Invalid policy.", fields=exc.message_dict)
    row.updated_at = timezone.now()
    row.save()
    return {name: previous[name] for name in sorted(changes) if previous[name] != changes[name]}
