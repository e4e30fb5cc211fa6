"""A read-only web dashboard of orchestrations and entities, built on the SDK's client API."""
