"""The serial HAL: transports, the link (sequence, acks, retries, heartbeat, health)
and, later, one driver per device."""
