"""MQTT device driver: IoT devices that publish JSON, plain numbers or Sparkplug B."""
