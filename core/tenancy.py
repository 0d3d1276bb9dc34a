"""Tenancy by construction: the abstract base and manager every org-owned model uses.

`Model.objects.for_org(org)` is the normal way in. `Model.objects.unscoped()` exists for the few
places that legitimately cross orgs (authentication by credential lookup, the audit verifier, SCIM
token resolution) and is spelled so that it stands out in review; a test walks the source and fails
on any other use of an org-scoped model's manager.
"""

from django.db import models


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
