"""Adapters for the ports: local ones here, cloud ones beside them."""
