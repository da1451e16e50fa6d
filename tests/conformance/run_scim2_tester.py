"""Runs the public conformance suite scim2-tester against a running scimd.

Usage: run_scim2_tester.py BASE_URL TOKEN
Prints one line a check and a closing `N passed, N failed, N skipped` line; exits 1 when a
check ends in ERROR or CRITICAL (a MUST of RFC 7643/7644 broken) or DEVIATION (a SHOULD).
"""

import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


def with_email(resource):
    """scimd makes every User a member of an organization, known by email: a user whose
    userName is not an address and who has no emails is refused (README: Conformance). The
    suite generates random userNames, so give them an address form; nothing else changes."""
    user_name = getattr(resource, "user_name", None)
    if isinstance(user_name, str) and "@" not in user_name:
        resource.user_name = f"{user_name}@conformance.test"
    return resource


class MemberClient(SyncSCIMClient):
    def create(self, resource, *args, **kwargs):
        return super().create(with_email(resource), *args, **kwargs)

    def replace(self, resource, *args, **kwargs):
        return super().replace(with_email(resource), *args, **kwargs)


def main() -> int:
    base_url, token = sys.argv[1], sys.argv[2]
    http = httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = MemberClient(http)
    results = check_server(client)
    passed = failed = skipped = 0
    for result in results:
        where = f"[{result.resource_type}] " if result.resource_type else ""
        print(f"{result.status.name:<10} {where}{result.title}: {result.reason or ''}")
        if result.status in PASSING:
            passed += 1
        elif result.status == Status.SKIPPED:
            skipped += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
