"""plantguard_modbus — a PlantGuard plugin package."""
