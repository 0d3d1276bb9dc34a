from accounts.urls import org_pages
from core.permissions import Perm
from rbac.pages import OrgPageMixin


def test_every_org_page_declares_a_permission_for_each_handler():
    problems = []
    for pattern in org_pages:
        view = pattern.callback.view_class
        if not issubclass(view, OrgPageMixin):
            problems.append(f"{pattern.name}: {view.__name__} does not use OrgPageMixin")
            continue
        handlers = [m for m in view.http_method_names if m not in ("options", "head") and hasattr(view, m)]
        for method in handlers:
            if not isinstance(view.required.get(method), Perm):
                problems.append(f"{pattern.name}: {view.__name__}.{method} declares no permission")
    assert not problems, "\n".join(problems)
