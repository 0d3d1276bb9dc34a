"""Filters of the person's own account pages."""

from django import template

from accounts.user_agents import describe_user_agent

register = template.Library()


@register.filter
def readable_agent(user_agent) -> str:
    """A session's User-Agent as "Chrome 131 on macOS" (accounts.user_agents)."""
    return describe_user_agent(user_agent)
