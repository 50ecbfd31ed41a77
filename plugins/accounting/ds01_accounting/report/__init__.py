"""``ds01 report monthly``: a period's usage figures for admins, rendered and sent.

- :mod:`.period`: which window (last month, term, year, or any span);
- :mod:`.figures` and :mod:`.queue_waits`: the numbers, from usage rows and the audit log;
- :mod:`.render`: text, Markdown, CSV, JSON;
- :mod:`.send`: delivery as notices through the notify plugin;
- :mod:`.services` and :mod:`.cli`: the operation ``accounting.report`` and the command.
"""
