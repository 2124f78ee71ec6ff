"""The device records the standard asks for: basic information, maintenance and inspection.

* :mod:`.models` — the records (devices, plans, maintenance records) and their limits;
* :mod:`.exchange` — their JSON and CSV exchange formats (schemas in ``docs/schemas/``);
* :mod:`.imports` — importing a file into the store, checked whole before any write;
* :mod:`.due` — when a plan is next due (pure functions);
* :mod:`.meters` — running hours and counts since a plan was last done, from history;
* :mod:`.status` — the due status of every plan in the store;
* :mod:`.stats` — device statistics computed from what was recorded.
"""
