"""A local stand-in for the Durable Task Scheduler emulator, for machines without Docker."""
