"""The county hub: consumes every tower's MQTT messages, fuses fires, serves the officer's map."""
