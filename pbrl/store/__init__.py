"""The preference store: the only owner of labels, on SQLite, written in transactions.

It holds every comparison pbrl asks for (the two segment ids, where each came from, the label, the labeler, when it
was asked, shown and answered) and the segments those comparisons refer to (compressed arrays in the same database,
so a comparison never points at a missing segment). The training loop and any number of labelling front ends meet
here and nowhere else; WAL mode lets them read while one writes, and a label is on disk when ``answer`` returns.
Readers that must not write (``pbrl status``, ``pbrl eval``) open it with ``readonly=True``. A store that cannot be
used (missing, damaged, written by a newer pbrl, not writable) raises ``StoreError``: one line naming the file and
the fix.

    sqlite.py       SQLite errors as one-line StoreErrors; the write transaction
    schema.py       the tables, commented; creating, migrating and opening a store
    packing.py      segments packed as compressed arrays, checked for NaN first
    records.py      Comparison and StoreCounts, what the store hands out
    answers.py      leases, answers and undo: the half of PreferenceStore that labelling front ends use
    preferences.py  PreferenceStore: opening, asking, reading (and answers.py's answering)
    invitations.py  the labelers pbrl serve lets in, by hashed token
"""

from pbrl.store.preferences import Comparison, PreferenceStore, StoreCounts
from pbrl.store.schema import SCHEMA_VERSION
from pbrl.store.sqlite import BUSY_TIMEOUT_S, LeaseError, StoreError, StoreVersionError

__all__ = ["BUSY_TIMEOUT_S", "SCHEMA_VERSION", "Comparison", "LeaseError", "PreferenceStore", "StoreCounts",
           "StoreError", "StoreVersionError"]
