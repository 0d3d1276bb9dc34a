"""Tenancy by construction: the abstract base and manager every org-owned model uses.

`Model.objects.for_org(org)` is the normal way in. `Model.objects.unscoped()` exists for the few
places that legitimately cross orgs (authentication by credential lookup, the audit verifier, SCIM
token resolution) and is spelled so that it stands out in review; a test walks the source and fails
on any other use of an org-scoped model's manager.
"""

from django.db import models

from core.errors import NotFound


class OrgScopedQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)


class OrgScopedManager(models.Manager.from_queryset(OrgScopedQuerySet)):
    def for_org(self, org):
        return self.get_queryset().filter(org=org)

    def unscoped(self):
        return self.get_queryset()


class OrgScopedModel(models.Model):
    org = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")

    objects = OrgScopedManager()

    class Meta:
        abstract = True


def assert_same_org(org, *objects, audit=None) -> None:
    """Every object given to a service belongs to the org it acts in. Another org's object is
    refused exactly like an id that does not exist (NotFound), wherever the service was called from.
    `None` is skipped (an optional argument not given). `audit(obj)` makes the refusal's audit entry
    (audit.services.cross_tenant: the caller knows who asked)."""
    for obj in objects:
        if obj is not None and obj.org_id != org.pk:
            raise NotFound(f"{type(obj).__name__} not found.", audit=audit(obj) if audit else None)
