"""plantguard_sim — a PlantGuard plugin package."""
