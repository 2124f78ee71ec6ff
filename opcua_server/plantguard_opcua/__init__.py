"""plantguard_opcua — a PlantGuard plugin package."""
