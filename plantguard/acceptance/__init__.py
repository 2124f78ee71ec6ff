"""Acceptance (验收) of a site: ``plantguard acceptance SITE.yaml``.

The standard's scope ends with the system's acceptance.  A run tests one site's
gateway — the one running on the store, or one it starts from the site file — and
records every item with its status and evidence, structured after the scope:

* **system** — the gateway starts from the site file; the OPC UA endpoint is secure
  (no policy None on a network address, a server certificate valid for 90 days more,
  a trust list); no user keeps a default or demo password; every role has an account
  or is declared unused; the store's migrations are current; history retention holds
  and the disk has room for it; device clocks agree with the gateway's;
* **devices** — basic information on record, the device answers, its identity is on
  record, every point reads Good within its range;
* **alarms** — a loop check of every limit alarm on devices marked for it, its limits
  and live value for an engineer to sign off elsewhere;
* **maintenance** — a plan for every device that needs one, nothing overdue;
* **detection** — every multivariate group has a model trained on this site's history
  whose limits hold.

:mod:`.runner` runs the items, :mod:`.record` is the record (JSON), :mod:`.render`
the HTML report.  See docs/acceptance.md.
"""

from .record import Item, Record, Status
from .render import render_html
from .runner import AcceptanceRefused, Options, run

__all__ = ["AcceptanceRefused", "Item", "Options", "Record", "Status", "render_html", "run"]
