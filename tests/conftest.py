"""Shared test helpers; the plugin test kit (plantguard.testing) is loaded as a pytest plugin."""
