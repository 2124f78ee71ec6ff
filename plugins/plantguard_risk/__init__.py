"""Safety-production risk and hazard management (GB/T 33000): risk register, hidden dangers, early-warning index."""
