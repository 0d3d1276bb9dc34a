"""Forms of the single sign-on pages. They shape input (lines into lists, role and team names into
this org's ids); sso.connections and sso.domains hold the rules (never Owner, mapping targets of
this org only, what the IdP published)."""

from django import forms

from core.roles import BuiltinRole, TeamRole
from rbac.models import Role, Team
from sso.models import Protocol
from sso.people import ASSIGNABLE_ROLES
from web.forms import PageForm

MFA_LABELS = {Protocol.OIDC: "Accepted amr/acr values", Protocol.SAML: "Accepted AuthnContextClassRefs"}
MFA_HELP = {
    Protocol.OIDC: "One per line. A sign-in whose amr or acr holds one of them counts as a second factor "
                   "(Okta: mfa, Microsoft Entra ID: mfa). Empty: our own second factor is asked for.",
    Protocol.SAML: "One per line, e.g. urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor or (Entra ID) "
                   "http://schemas.microsoft.com/claims/multipleauthn. Empty: our own second factor is "
                   "asked for.",
}
# An IdP never hands out Owner: the choice is not offered (the service refuses it too).
ROLE_CHOICES = [(r.value, r.label) for r in BuiltinRole if r in ASSIGNABLE_ROLES]
MAPPINGS_HELP = ("One mapping per line: “group = role:viewer”, “group = custom_role:Role name” or "
                 "“group = team:Team name:admin” (team role member or admin). Group names are as the "
                 "IdP sends them in the groups attribute.")


def lines(text: str) -> list[str]:
    """Non-empty lines, trimmed, in order, without repeats."""
    return list(dict.fromkeys(line.strip() for line in (text or "").splitlines() if line.strip()))


class _ConnectionFields(PageForm):
    """What both the creation and the edit form hold."""

    name = forms.CharField(max_length=100, help_text="How members see it on the sign-in page.")
    default_role = forms.ChoiceField(
        choices=ROLE_CHOICES, initial=BuiltinRole.MEMBER,
        help_text="The role of a member the IdP creates, unless a group mapping gives another.")
    jit = forms.BooleanField(
        required=False, label="Create accounts just in time",
        help_text="A person at one of your verified domains who signs in for the first time becomes a "
                  "member.")
    accepted_mfa = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    groups_attribute = forms.CharField(
        max_length=200, required=False, initial="groups",
        help_text="The claim (OIDC) or attribute (SAML) that carries the person's groups.")

    def __init__(self, *args, protocol: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.protocol = protocol
        self.fields["accepted_mfa"].label = MFA_LABELS[protocol]
        self.fields["accepted_mfa"].help_text = MFA_HELP[protocol]
        for name in self.protocol_fields[Protocol.SAML if protocol == Protocol.OIDC else Protocol.OIDC]:
            del self.fields[name]

    protocol_fields: dict[str, tuple[str, ...]] = {Protocol.OIDC: (), Protocol.SAML: ()}

    def clean_accepted_mfa(self) -> list[str]:
        return lines(self.cleaned_data["accepted_mfa"])


class ConnectionCreateForm(_ConnectionFields):
    slug = forms.SlugField(
        max_length=50, help_text="Part of the URLs your IdP calls (letters, digits, dashes). It cannot "
                                 "change later.")
    issuer = forms.CharField(
        max_length=500, label="Issuer URL",
        help_text="As the IdP publishes it; its /.well-known/openid-configuration is read.")
    client_id = forms.CharField(max_length=255, label="Client ID")
    client_secret = forms.CharField(max_length=2000, strip=False, label="Client secret",
                                    widget=forms.PasswordInput(render_value=False))
    scopes = forms.CharField(max_length=500, initial="openid email profile")
    idp_metadata_url = forms.URLField(max_length=1000, required=False, label="IdP metadata URL",
                                      assume_scheme="https")
    idp_metadata_xml = forms.CharField(max_length=1_000_000, required=False, strip=False,
                                       label="Or the IdP metadata XML",
                                       widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}))
    allow_idp_initiated = forms.BooleanField(
        required=False, label="Allow IdP-initiated sign-in",
        help_text="Accept an assertion the IdP sends unasked (from its app dashboard).")

    protocol_fields = {
        Protocol.OIDC: ("issuer", "client_id", "client_secret", "scopes"),
        Protocol.SAML: ("idp_metadata_url", "idp_metadata_xml", "allow_idp_initiated"),
    }
    field_order = ["name", "slug", "issuer", "client_id", "client_secret", "scopes", "idp_metadata_url",
                   "idp_metadata_xml", "allow_idp_initiated", "default_role", "jit", "accepted_mfa",
                   "groups_attribute"]

    def service_arguments(self) -> dict:
        """The keyword arguments of `connection_create` (the protocol's own fields only)."""
        return {"protocol": self.protocol, **self.cleaned_data}


class ConnectionUpdateForm(_ConnectionFields):
    """The edit form: a blank secret or metadata field keeps what is stored."""

    enabled = forms.BooleanField(required=False, help_text="Switched off, nobody signs in through it.")
    group_mappings = forms.CharField(required=False, help_text=MAPPINGS_HELP,
                                     widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}))
    client_id = forms.CharField(max_length=255, label="Client ID")
    client_secret = forms.CharField(max_length=2000, strip=False, required=False, label="New client secret",
                                    help_text="Leave blank to keep the current one.",
                                    widget=forms.PasswordInput(render_value=False))
    scopes = forms.CharField(max_length=500)
    idp_metadata_url = forms.URLField(max_length=1000, required=False, label="New IdP metadata URL",
                                      assume_scheme="https",
                                      help_text="Leave blank to keep what is stored.")
    idp_metadata_xml = forms.CharField(max_length=1_000_000, required=False, strip=False,
                                       label="Or new IdP metadata XML",
                                       widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}))
    allow_idp_initiated = forms.BooleanField(required=False, label="Allow IdP-initiated sign-in")
    notes = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}),
                            help_text="For your administrators: who owns the IdP side, where it is set up.")

    protocol_fields = {
        Protocol.OIDC: ("client_id", "client_secret", "scopes"),
        Protocol.SAML: ("idp_metadata_url", "idp_metadata_xml", "allow_idp_initiated"),
    }
    field_order = ["enabled", "name", "default_role", "jit", "accepted_mfa", "groups_attribute",
                   "group_mappings", "client_id", "client_secret", "scopes", "idp_metadata_url",
                   "idp_metadata_xml", "allow_idp_initiated", "notes"]

    def __init__(self, *args, connection, **kwargs):
        self.connection = connection
        kwargs.setdefault("initial", {
            "enabled": connection.enabled, "name": connection.name, "default_role": connection.default_role,
            "jit": connection.jit, "accepted_mfa": "\n".join(connection.accepted_mfa or []),
            "groups_attribute": connection.groups_attribute,
            "group_mappings": mappings_text(connection.org, connection.group_mappings),
            "client_id": connection.client_id, "scopes": connection.scopes,
            "allow_idp_initiated": connection.allow_idp_initiated, "notes": connection.notes,
        })
        super().__init__(*args, protocol=connection.protocol, **kwargs)

    def clean_group_mappings(self) -> list[dict]:
        mappings, problems = [], []
        for number, line in enumerate(lines(self.cleaned_data["group_mappings"]), start=1):
            try:
                mappings.append(mapping_parse(self.connection.org, line))
            except ValueError as exc:
                problems.append(f"Line {number} ({line[:60]}): {exc}")
        if problems:
            raise forms.ValidationError(problems)
        return mappings

    def service_arguments(self) -> dict:
        """The keyword arguments of `connection_update`: blank secrets and metadata are left out."""
        data = dict(self.cleaned_data)
        for name in ("client_secret", "idp_metadata_url", "idp_metadata_xml"):
            if name in data and not data[name]:
                del data[name]
        return data


# --- group mappings as lines ---------------------------------------------------------------------


def mapping_parse(org, line: str) -> dict:
    """`group = role:viewer` | `group = custom_role:<name>` | `group = team:<name>[:member|admin]`,
    names resolved among this org's roles and teams only. The last "=" separates, so a group named
    like an LDAP DN ("CN=eng,OU=Groups") keeps its own."""
    group, separator, target = line.rpartition("=")
    group, target = group.strip(), target.strip()
    if not separator or not group or ":" not in target:
        raise ValueError("write “group = role:viewer”, “custom_role:<name>” or “team:<name>:admin”.")
    kind, _, rest = target.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if kind == "role":
        return {"group": group, "role": rest}
    if kind == "custom_role":
        return {"group": group, "custom_role": _named(Role, org, rest, "role")}
    if kind == "team":
        name, _, team_role = rest.rpartition(":")
        if team_role.strip().lower() not in (TeamRole.MEMBER, TeamRole.ADMIN):
            name, team_role = rest, TeamRole.MEMBER
        return {"group": group, "team": _named(Team, org, name.strip(), "team"),
                "team_role": team_role.strip().lower()}
    raise ValueError(f"“{kind}” is not role, custom_role or team.")


def _named(model, org, name: str, what: str) -> str:
    row = model.objects.for_org(org).filter(name=name).first()
    if row is None:
        raise ValueError(f"no {what} named “{name}” in this organization.")
    return str(row.pk)


def mappings_text(org, mappings) -> str:
    """The stored mappings as the editor's lines (ids shown as this org's names)."""
    ids = [m.get("custom_role") or m.get("team") for m in mappings or []]
    ids = [i for i in ids if i]
    names = {str(r.pk): r.name for r in Role.objects.for_org(org).filter(pk__in=ids)}
    names |= {str(t.pk): t.name for t in Team.objects.for_org(org).filter(pk__in=ids)}
    out = []
    for m in mappings or []:
        if "role" in m:
            out.append(f"{m['group']} = role:{m['role']}")
        elif "custom_role" in m:
            out.append(f"{m['group']} = custom_role:{names.get(m['custom_role'], m['custom_role'])}")
        elif "team" in m:
            team = names.get(m["team"], m["team"])
            out.append(f"{m['group']} = team:{team}:{m.get('team_role', 'member')}")
    return "\n".join(out)


class DomainAddForm(PageForm):
    domain = forms.CharField(max_length=300, help_text="An email domain of your people, e.g. acme.com.")
