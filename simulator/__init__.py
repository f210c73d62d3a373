"""The device, in software: emulated firmware, physics, sensors and faults.

It depends on `protocols` only, so it stays an honest, independent peer of the daemon.
"""
