"""Hostile Python guest: raises an uncaught exception on every other call.

Shows that a Python exception traps only that call (audited as a rule
fault), that the instance is rebuilt, and that the host-side state survives
(the call counter keeps counting)."""

import vigil
from vigil import PartitionKey, Severity


class PythonRaise(vigil.Rule):
    def metadata(self):
        return vigil.metadata("python-raise", "0.0.1", "hostile test guest: raises",
                              subscribes=["*"], actions=[],
                              # One call counter across every event.
                              partition=PartitionKey.GLOBAL)

    def on_event(self, host, event):
        call = host.counter_add("calls", 7 * vigil.DAY_MS)
        if call % 2 == 1:
            raise ValueError(f"python-raise failed on call {call}")
        return [vigil.finding(Severity.INFO, "survived", event.id, call=call)]


WitWorld = vigil.export_rule(PythonRaise)
