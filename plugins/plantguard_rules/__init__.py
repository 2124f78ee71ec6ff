"""plantguard_rules — a PlantGuard plugin package."""
