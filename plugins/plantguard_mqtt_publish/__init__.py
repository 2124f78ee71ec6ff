"""Publishes the gateway over MQTT: a Sparkplug B edge node and Home Assistant MQTT discovery."""
