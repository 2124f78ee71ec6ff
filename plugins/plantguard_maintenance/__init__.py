"""plantguard_maintenance — maintenance- and inspection-due checks as a rule plugin."""
