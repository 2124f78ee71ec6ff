"""Reports: shift/day/week/month pages of alarm KPIs, device statistics, maintenance
compliance and trends (:mod:`.data` gathers the numbers, :mod:`.render` draws the page),
and :mod:`.page`, the self-contained HTML page pieces other records (acceptance) share."""
