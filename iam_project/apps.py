from django.apps import AppConfig


class IamProjectConfig(AppConfig):
    """The composition root: settings, URL composition and the commands that span several apps."""

    name = "iam_project"
