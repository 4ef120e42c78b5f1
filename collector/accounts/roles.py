"""Who may use which page: an operator the session dashboard, a reviewer the review page, an admin every
page (the fleet page only an admin). Pages are named by their server's `app` ("dashboard", "review",
"fleet"); a page not listed here is an admin's."""
from __future__ import annotations

from typing import Dict, FrozenSet

from collector.errors import ConfigError

ROLES = ("operator", "reviewer", "admin")
PAGES_OF_ROLE: Dict[str, FrozenSet[str]] = {"operator": frozenset({"dashboard"}),
                                             "reviewer": frozenset({"review"})}
ROLE_FOR_PAGE = {"dashboard": "operator", "review": "reviewer"}  # for messages: whose page it is


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def role_allows(role: str, page: str) -> bool:
    """Whether someone with `role` may use the page served as `page` (its server's app name)."""
    return role == "admin" or page in PAGES_OF_ROLE.get(role, frozenset())


def whose_page(page: str) -> str:
    """Who a page is for, in words ("operators and admins")."""
    role = ROLE_FOR_PAGE.get(page)
    return f"{role}s and admins" if role else "admins"
