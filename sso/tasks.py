"""Periodic SSO work (thin: one service each)."""

from celery import shared_task

from sso.connections import connections_maintain, flows_prune


@shared_task
def sso_connections_maintain() -> dict:
    return connections_maintain()


@shared_task
def sso_flows_prune() -> int:
    return flows_prune()
