"""Policy wrappers for SSO: what the admin API and pages call, with the caller's Access."""

from audit.services import records_denials
from rbac.access import Access
from rbac.authorization import assert_in_org
from sso import connections, domains


@records_denials
def domain_add(*, access: Access, domain: str):
    return domains.domain_add(
        org=access.org, domain=domain, actor=access.actor, created_by=access.creator_user
    )


@records_denials
def domain_verify(*, access: Access, domain):
    assert_in_org(access, domain)
    return domains.domain_verify(domain=domain, actor=access.actor)


@records_denials
def domain_remove(*, access: Access, domain) -> None:
    assert_in_org(access, domain)
    domains.domain_remove(domain=domain, actor=access.actor)


@records_denials
def connection_create(*, access: Access, **fields):
    return connections.connection_create(org=access.org, actor=access.actor, created_by=access.creator_user,
                                         **fields)


@records_denials
def connection_update(*, access: Access, connection, **changes):
    assert_in_org(access, connection)
    return connections.connection_update(connection=connection, actor=access.actor, **changes)


@records_denials
def connection_delete(*, access: Access, connection) -> None:
    assert_in_org(access, connection)
    connections.connection_delete(connection=connection, actor=access.actor)


@records_denials
def connection_refresh(*, access: Access, connection) -> bool:
    assert_in_org(access, connection)
    return connections.metadata_refresh(connection=connection, actor=access.actor)
